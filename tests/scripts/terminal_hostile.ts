// Prints and emits text made to hijack a terminal: rich markup, colours,
// an OSC 8 hyperlink, an 8-bit CSI, a right-to-left override; and a tab.
import * as coral from "@coral/sdk";

const text = "[link=https://evil.example]click[/link] [bold red]loud[/bold red] " +
  "\x1b[31mred\x1b[0m \x1b]8;;https://evil.example\x07link\x1b]8;;\x07 \x9b2J \u202eevil\tafter-tab";
console.log(text);
await coral.emit("hostile", { text });
