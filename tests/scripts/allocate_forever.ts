const hoard: number[][] = [];
while (true) hoard.push(new Array(1_000_000).fill(1));
