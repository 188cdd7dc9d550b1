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
  AndNode, BinaryOperationNode, ColumnNode, DeleteQueryNode, OrNode, ParensNode, PrimitiveValueListNode, ReferenceNode,
  SelectQueryNode, sql, UpdateQueryNode, ValueListNode, ValueNode,
  type KyselyPlugin, type OperationNode, type PluginTransformQueryArgs, type PluginTransformResultArgs,
  type QueryResult, type RawBuilder, type RootOperationNode, type UnknownRow,
} from 'kysely';
import { JOB_STATES, TASK_STATES } from '../core/states.js';

const STATES: ReadonlySet<unknown> = new Set<string>([...TASK_STATES, ...JOB_STATES]);

/** States as SQL literals (`'queued', 'preparing'`), for statements prepared on the connection itself (jobs-lease-sqlite.ts). */
export function stateLiterals(states: readonly string[]): string {
  for (const state of states) if (!STATES.has(state)) throw new Error(`stateLiterals: ${state} is not a state`);
  return states.map((s) => `'${s}'`).join(', ');
}

/** The same for a raw `sql` statement's `status in (…)`. */
export function stateList(states: readonly string[]): RawBuilder<unknown> {
  return sql.raw(stateLiterals(states));
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

/** The WHERE tree through AND, OR and parentheses (not subqueries), copying only what changes. */
function inlineWhere(node: OperationNode): OperationNode {
  if (AndNode.is(node) || OrNode.is(node)) {
    const left = inlineWhere(node.left);
    const right = inlineWhere(node.right);
    if (left === node.left && right === node.right) return node;
    return AndNode.is(node) ? AndNode.create(left, right) : OrNode.create(left, right);
  }
  if (ParensNode.is(node)) {
    const inner = inlineWhere(node.node);
    return inner === node.node ? node : ParensNode.create(inner);
  }
  if (BinaryOperationNode.is(node) && isStatusColumn(node.leftOperand)) {
    const right = inlineStates(node.rightOperand);
    return right === node.rightOperand ? node : BinaryOperationNode.create(node.leftOperand, node.operator, right);
  }
  return node;
}

/**
 * A select, update or delete with its WHERE, LIMIT and OFFSET rewritten; anything else as it is. Not
 * Kysely's OperationNodeTransformer: it copies every node of every statement, which cost more (5 µs a
 * query, CPU profile) than the re-prepares it saved on most statements.
 */
function inline(root: RootOperationNode): RootOperationNode {
  if (!SelectQueryNode.is(root) && !UpdateQueryNode.is(root) && !DeleteQueryNode.is(root)) return root;
  const where = root.where ? inlineWhere(root.where.where) : undefined;
  const limit = root.limit ? immediateInteger(root.limit.limit) : undefined;
  const offset = SelectQueryNode.is(root) && root.offset ? immediateInteger(root.offset.offset) : undefined;
  const changed = (root.where && where !== root.where.where) || (root.limit && limit !== root.limit.limit)
    || (SelectQueryNode.is(root) && root.offset && offset !== root.offset.offset);
  if (!changed) return root;
  return {
    ...root,
    ...(root.where && where ? { where: { ...root.where, where } } : {}),
    ...(root.limit && limit ? { limit: { ...root.limit, limit } } : {}),
    ...(SelectQueryNode.is(root) && root.offset && offset ? { offset: { ...root.offset, offset } } : {}),
  };
}

export class SqliteInlinePlugin implements KyselyPlugin {
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    return inline(args.node);
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result;
  }
}
