// Starts the fauxqs SQS emulator on 127.0.0.1 only (its own CLI binds 0.0.0.0).
// Usage: node launch.mjs [port]   (port 0 picks a free one; the bound port is printed as "listening <port>")
import { buildApp } from "fauxqs";

const port = Number(process.argv[2] ?? process.env.FAUXQS_PORT ?? 0);
const region = process.env.AWS_REGION ?? "us-east-1";
// No `host` option: queue URLs then follow the Host header, i.e. http://127.0.0.1:<port>/<account>/<name>.
const app = buildApp({ logger: false, defaultRegion: region });
const address = await app.listen({ host: "127.0.0.1", port });
const bound = new URL(address).port;
console.log(`listening ${bound}`);

const stop = async () => {
  await app.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
