/**
 * SQLite: a bound value that the query planner may use makes the statement re-prepare every time it is
 * bound, which better-sqlite3 does on every run. Two kinds here: a LIMIT or OFFSET, and a value compared
 * with a column that a partial index's WHERE names (the tasks table's queue and lease indexes name
 * `status`). Measured on this schema (scratch loop, an empty table): `select * from tasks where job_id = ?
 * order by idx limit ?` 12.1 µs a run, with `limit 2` 0.32 µs; the lease's candidate query 4.7 µs with its
 * status and limit bound, 0.43 µs with both written out.
 *
 * This Kysely plugin writes those values into the statement text: LIMIT and OFFSET integers, and task and
 * job state names compared with a `status` column. Both come from small fixed sets (states are schema
 * constants; limits are page sizes and slot counts), so the statement cache stays small, and neither is
 * ever free text from a request (a state filter that is not a known state stays bound).
 * Raw `sql` statements name their states with `stateList` below.
 */
import {
  ColumnNode, OperationNodeTransformer, PrimitiveValueListNode, ReferenceNode, sql, ValueListNode, ValueNode,
  type BinaryOperationNode, type KyselyPlugin, type LimitNode, type OffsetNode, type OperationNode,
  type PluginTransformQueryArgs, type PluginTransformResultArgs, type QueryResult, type RawBuilder,
  type RootOperationNode, type UnknownRow,
} from 'kysely';
import { JOB_STATES, TASK_STATES } from '../core/states.js';

const STATES: ReadonlySet<unknown> = new Set<string>([...TASK_STATES, ...JOB_STATES]);

/** States as literals for a raw `sql` statement's `status in (…)`. */
export function stateList(states: readonly string[]): RawBuilder<unknown> {
  for (const state of states) if (!STATES.has(state)) throw new Error(`stateList: ${state} is not a state`);
  return sql.join(states.map((s) => sql.lit(s)));
}

function immediateInteger(node: OperationNode): OperationNode {
  if (!ValueNode.is(node) || node.immediate || !Number.isSafeInteger(node.value)) return node;
  return ValueNode.createImmediate(node.value);
}

function isStatusColumn(node: OperationNode): boolean {
  return ReferenceNode.is(node) && ColumnNode.is(node.column) && node.column.column.name === 'status';
}

function inlineStates(node: OperationNode): OperationNode {
  if (ValueNode.is(node) && !node.immediate && STATES.has(node.value)) return ValueNode.createImmediate(node.value);
  if (PrimitiveValueListNode.is(node) && node.values.length > 0 && node.values.every((v) => STATES.has(v))) {
    return ValueListNode.create(node.values.map((v) => ValueNode.createImmediate(v)));
  }
  return node;
}

class Inliner extends OperationNodeTransformer {
  protected override transformLimit(node: LimitNode): LimitNode {
    const out = super.transformLimit(node);
    return { ...out, limit: immediateInteger(out.limit) };
  }

  protected override transformOffset(node: OffsetNode): OffsetNode {
    const out = super.transformOffset(node);
    return { ...out, offset: immediateInteger(out.offset) };
  }

  protected override transformBinaryOperation(node: BinaryOperationNode): BinaryOperationNode {
    const out = super.transformBinaryOperation(node);
    return isStatusColumn(out.leftOperand) ? { ...out, rightOperand: inlineStates(out.rightOperand) } : out;
  }
}

export class SqliteInlinePlugin implements KyselyPlugin {
  private readonly inliner = new Inliner();

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    return this.inliner.transformNode(args.node);
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result;
  }
}
