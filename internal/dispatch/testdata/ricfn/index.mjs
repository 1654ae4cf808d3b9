// A Lambda function for AWS's Node.js Runtime Interface Client (hack/ric), run by
// internal/dispatch's tests against the dispatcher's Runtime API. By each record's body:
//   "sleep:<ms>"  sleeps that long (ignoring the deadline, like a stuck function), then handles it;
//   "peer"        waits (at most 10 s) for another invocation handling "peer" at the same time and
//                 prints "overlapped" or "alone" (AWS_LAMBDA_MAX_CONCURRENCY);
//   "bad"         is reported in batchItemFailures;
//   "context"     prints the function's name, invoked ARN, memory, the record's eventSourceARN;
//   anything else is handled.
// A handled record is printed as "handled <body>".
let peers = 0;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export const handler = async (event, context) => {
  const failures = [];
  for (const r of event.Records) {
    if (r.body === "bad") {
      failures.push({ itemIdentifier: r.messageId });
      continue;
    }
    if (r.body.startsWith("sleep:")) {
      await sleep(parseInt(r.body.slice(6), 10));
    } else if (r.body === "peer") {
      peers++;
      const until = Date.now() + 10000;
      while (peers < 2 && Date.now() < until) await sleep(10);
      console.log(peers >= 2 ? "overlapped" : "alone");
    } else if (r.body === "context") {
      console.log(`context ${context.functionName} ${context.invokedFunctionArn} ${context.memoryLimitInMB} ${r.eventSourceARN}`);
    }
    console.log(`handled ${r.body}`);
  }
  return { batchItemFailures: failures };
};
