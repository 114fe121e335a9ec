// Allowed: a file of the script's own directory.
import { answer } from "./sibling.ts";
console.log(`sibling says ${answer}`);
