console.log("out line 1");
console.error("err line 1");
console.log("out line 2");
Deno.exit(3);
