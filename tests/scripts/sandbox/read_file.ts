console.log(await Deno.readTextFile("/etc/hostname"));
