// SQL fragments over the telemetry table shared by the repositories.
import { FIELD_COLUMNS, GROUP_FLAG, type Group } from '../../proto/fields.ts';

/** SET clause that removes a group from a record: its columns NULL, its flag false. */
export function clearGroupSet(group: Group): string {
  const cols = FIELD_COLUMNS.filter((c) => c.group === group).map((c) => `${c.column} = NULL`);
  return `${cols.join(', ')}, ${GROUP_FLAG[group]} = false`;
}
