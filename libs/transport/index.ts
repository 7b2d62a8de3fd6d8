export { answerEach } from "./answer-each.js";
export { AsyncQueue } from "./async-queue.js";
export { type ConnectOptions, connectTo, transportTo } from "./client.js";
export type { HealthStatus } from "./health.js";
export { type RunningServer, type ServerOptions, startServer } from "./server.js";
export { type OpenStream, StreamLink } from "./stream-link.js";
