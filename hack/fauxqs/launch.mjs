// Starts the fauxqs SQS emulator on 127.0.0.1 only (its own CLI binds 0.0.0.0), or on the one
// address given (the real node's bridge address, for pods).
// Usage: node launch.mjs [port [host]]   (port 0 picks a free one; the bound port is printed as "listening <port>")
import { buildApp } from "fauxqs";

const port = Number(process.argv[2] ?? process.env.FAUXQS_PORT ?? 0);
const host = process.argv[3] ?? "127.0.0.1";
const region = process.env.AWS_REGION ?? "us-east-1";
// No `host` option: queue URLs then follow the Host header, i.e. http://<host>:<port>/<account>/<name>.
const app = buildApp({ logger: false, defaultRegion: region });
const address = await app.listen({ host, port });
const bound = new URL(address).port;
console.log(`listening ${bound}`);

const stop = async () => {
  await app.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
