/**
 * SQL: whether the deployment_environments row aliased `row` is production, as the environment's
 * definition says or, when it does not say, the end of the promotion order (no other one
 * promotes from it).
 */
export const isProductionSql = (row: string) => `COALESCE(${row}.production,
  NOT EXISTS (SELECT 1 FROM deployment_environments later WHERE later.promotes_from = ${row}.name))`;
