const out = await new Deno.Command("/usr/bin/id").output();
console.log(new TextDecoder().decode(out.stdout));
