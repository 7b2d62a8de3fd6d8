export { startServer, type ServerOptions, type RunningServer } from "./server.js";
export type { HealthStatus } from "./health.js";
export { connectTo, transportTo, type ConnectOptions } from "./client.js";
export { StreamLink, type OpenStream } from "./stream-link.js";
export { AsyncQueue } from "./async-queue.js";
