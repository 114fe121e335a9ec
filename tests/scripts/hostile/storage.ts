// Storage a script could fill or use to pass data to its next run: the
// Cache API and localStorage. Reports what an earlier run left, then stores.
const cache = await caches.open("fill");
const found = {
  cache: (await cache.match("https://x/")) !== undefined,
  localStorage: localStorage.getItem("k") !== null,
};
await cache.put("https://x/", new Response(new Uint8Array(1 << 20)));
localStorage.setItem("k", "v");
console.log(JSON.stringify(found));
