/**
 * customVjp: a function with a hand-written backward pass. It is provided by @qkvflow/autograd (one engine-level
 * group node for all outputs, `bwd` called once with every output's cotangent); re-exported here for the adjoint.
 */
export { customVjp } from "@qkvflow/autograd";
