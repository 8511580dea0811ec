import { Tensor } from "./tensor.js";

/** A nested structure (arrays / plain objects) whose leaves are tensors; other values pass through unchanged. */
export type Tree = Tensor | readonly Tree[] | { readonly [key: string]: Tree } | number | string | boolean | null | undefined;

/** Flattens a tree into its tensor leaves (depth-first, object keys in insertion order) and a rebuild function. */
export function treeFlatten<T>(tree: T): { leaves: Tensor[]; unflatten: (leaves: readonly Tensor[]) => T } {
  const leaves: Tensor[] = [];
  const visit = (x: unknown): unknown => {
    if (x instanceof Tensor) {
      leaves.push(x);
      return LEAF;
    }
    if (Array.isArray(x)) return x.map(visit);
    if (x !== null && typeof x === "object" && Object.getPrototypeOf(x) === Object.prototype) {
      const o: Record<string, unknown> = {};
      for (const k of Object.keys(x)) o[k] = visit((x as Record<string, unknown>)[k]);
      return o;
    }
    return x;
  };
  const skeleton = visit(tree);
  const unflatten = (ls: readonly Tensor[]): T => {
    if (ls.length !== leaves.length) throw new Error(`treeUnflatten: got ${ls.length} leaves; expected ${leaves.length}`);
    let i = 0;
    const build = (s: unknown): unknown => {
      if (s === LEAF) return ls[i++];
      if (Array.isArray(s)) return s.map(build);
      if (s !== null && typeof s === "object") {
        const o: Record<string, unknown> = {};
        for (const k of Object.keys(s)) o[k] = build((s as Record<string, unknown>)[k]);
        return o;
      }
      return s;
    };
    return build(skeleton) as T;
  };
  return { leaves, unflatten };
}

const LEAF = Symbol("leaf");

/** Applies `f` to every tensor leaf, keeping the structure. */
export function treeMap<T>(tree: T, f: (x: Tensor, i: number) => Tensor): T {
  const { leaves, unflatten } = treeFlatten(tree);
  return unflatten(leaves.map(f));
}

/** Applies `f` to matching leaves of two trees of the same structure. */
export function treeZip<T>(a: T, b: T, f: (x: Tensor, y: Tensor, i: number) => Tensor): T {
  const fa = treeFlatten(a);
  const fb = treeFlatten(b);
  if (fa.leaves.length !== fb.leaves.length) {
    throw new Error(`treeZip: trees have ${fa.leaves.length} and ${fb.leaves.length} tensor leaves; expected the same structure`);
  }
  return fa.unflatten(fa.leaves.map((x, i) => f(x, fb.leaves[i], i)));
}

/** The tensor leaves of a tree. */
export function treeLeaves(tree: unknown): Tensor[] {
  return treeFlatten(tree).leaves;
}
