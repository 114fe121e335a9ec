import data from "../../targets/counter.c" with { type: "text" };
console.log(data.length);
