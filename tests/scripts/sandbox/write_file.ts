await Deno.writeTextFile("/tmp/coral-sandbox-escape", "x");
