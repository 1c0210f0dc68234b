/**
 * grpc-js keeps channelz statistics of every call (trackers, timestamps, a registry entry per
 * channel and socket) unless told not to. Nothing here serves channelz, so every server and
 * client turns it off: less work and garbage a call.
 */
export const WITHOUT_CHANNELZ = { "grpc.enable_channelz": 0 } as const;
