// Building blocks of the route schemas; generic, so the type provider sees every property.

export const str = { type: "string" } as const;
export const date = { type: "string", format: "date-time" } as const;
export const nullableDate = { type: ["string", "null"], format: "date-time" } as const;
export const obj = <const P extends Record<string, unknown>>(properties: P) =>
  ({ type: "object", properties }) as const;
export const arr = <const I>(items: I) => ({ type: "array", items }) as const;
