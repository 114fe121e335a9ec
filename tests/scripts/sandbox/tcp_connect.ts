const conn = await Deno.connect({ hostname: "127.0.0.1", port: 22 });
conn.close();
