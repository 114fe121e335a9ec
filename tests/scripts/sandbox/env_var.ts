console.log(Deno.env.get("HOME"));
