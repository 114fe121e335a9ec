const path = "/etc/" + "hostname";
const mod = await import(path, { with: { type: "text" } });
console.log(mod.default);
