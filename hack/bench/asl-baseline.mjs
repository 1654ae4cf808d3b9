// Runs a state machine definition N times with aws-local-stepfunctions and prints the executions
// and elapsed milliseconds: `executions <n> ms <ms>`. Used by internal/asl's benchmark as the baseline.
// Usage: node asl-baseline.mjs <definition.json> <executions>
import { readFileSync } from "node:fs";
import { StateMachine } from "aws-local-stepfunctions";

const definition = JSON.parse(readFileSync(process.argv[2], "utf8"));
const n = Number(process.argv[3] ?? 1000);
const machine = new StateMachine(definition);
// Warm up, as the Go benchmark does.
for (let i = 0; i < Math.min(200, n); i++) await machine.run({ n: 0 }).result;
const start = performance.now();
for (let i = 0; i < n; i++) await machine.run({ n: i }).result;
console.log(`executions ${n} ms ${performance.now() - start}`);
