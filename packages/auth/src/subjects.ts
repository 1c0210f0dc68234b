/**
 * How two subjects are compared where a rule depends on who someone is (separation of duties,
 * one vote per approver, named members). The identity provider's exact `sub` is what events
 * record as the actor; the comparison folds what an identity provider or a person may write
 * differently for one identity: compatibility forms (NFKC: a full-width "Ｏ" is an "O"), case
 * and surrounding white space. So "Olivia" cannot approve what "olivia" owns.
 */
export function subjectKey(subject: string): string {
  // Upper then lower case approximates Unicode full case folding ("ß" and "SS" fold alike),
  // which toLowerCase alone does not.
  return subject.normalize("NFKC").trim().toUpperCase().toLowerCase().normalize("NFKC");
}

/** True when the two subjects name one identity under `subjectKey`. */
export const sameSubject = (a: string, b: string): boolean => subjectKey(a) === subjectKey(b);
