// Persistent storage a script could fill: the Cache API and localStorage.
const results: Record<string, string> = {};
try {
  const cache = await caches.open("fill");
  await cache.put("https://x/", new Response(new Uint8Array(8 << 20)));
  results.cache = "stored";
} catch (e) {
  results.cache = (e as Error).name;
}
try {
  localStorage.setItem("k", "v".repeat(1 << 20));
  results.localStorage = "stored";
} catch (e) {
  results.localStorage = (e as Error).name;
}
console.log(JSON.stringify(results));
