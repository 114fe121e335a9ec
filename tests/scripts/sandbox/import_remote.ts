import { x } from "https://example.com/x.ts";
console.log(x);
