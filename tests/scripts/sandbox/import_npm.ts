import isNumber from "npm:is-number@7";
console.log(isNumber(1));
