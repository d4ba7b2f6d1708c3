// @quantumworks/realtime-react: React bindings of the QuantumWorks Realtime client (SPEC §12).
export {
  RealtimeProvider,
  describeConnection,
  storeFor,
  useConversation,
  useNotifications,
  useRealtime,
  useRealtimeStore,
  useTask,
} from "./hooks.js";
export { RealtimeStore, conversationKey } from "./store.js";
