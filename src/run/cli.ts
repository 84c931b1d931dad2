export { runMain } from "./index.js";
