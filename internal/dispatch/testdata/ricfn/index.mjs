// A Lambda function for AWS's Node.js Runtime Interface Client (hack/ric), run by
// internal/dispatch's tests against the dispatcher's Runtime API. By each record's body:
//   "sleep:<ms>"  sleeps that long (ignoring the deadline, like a stuck function), then handles it;
//   "span:<ms>"   works that long and prints "span <start ms> <end ms>" (the RIC's multi-concurrency
//                 mode runs invocations in separate worker isolates, so the test compares the
//                 spans rather than a counter shared in memory);
//   "bad"         is reported in batchItemFailures;
//   "context"     prints the function's name, invoked ARN, memory, the record's eventSourceARN;
//   anything else is handled.
// A handled record is printed as "handled <body>".
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
    } else if (r.body.startsWith("span:")) {
      const start = Date.now();
      await sleep(parseInt(r.body.slice(5), 10));
      console.log(`span ${start} ${Date.now()}`);
    } else if (r.body === "context") {
      console.log(`context ${context.functionName} ${context.invokedFunctionArn} ${context.memoryLimitInMB} ${r.eventSourceARN}`);
    }
    console.log(`handled ${r.body}`);
  }
  return { batchItemFailures: failures };
};
