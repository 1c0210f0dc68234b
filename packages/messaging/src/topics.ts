/** The services that publish domain events, each on its own topic. */
export const EVENT_SOURCES = ["release", "change", "configuration", "deployment"] as const;
export type EventSource = (typeof EVENT_SOURCES)[number];

/** The topic a service's relay publishes its events to, before any KAFKA_TOPIC_PREFIX. */
export const eventsTopic = (service: EventSource): string => `rdm.${service}.events.v1`;

export const RELEASE_EVENTS_TOPIC = eventsTopic("release");
export const CHANGE_EVENTS_TOPIC = eventsTopic("change");
export const CONFIGURATION_EVENTS_TOPIC = eventsTopic("configuration");
export const DEPLOYMENT_EVENTS_TOPIC = eventsTopic("deployment");
