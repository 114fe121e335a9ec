const lib = Deno.dlopen("libc.so.6", { getpid: { parameters: [], result: "i32" } });
console.log(lib.symbols.getpid());
