/**
 * Every differentiable op exported by the package. The property-test suite checks that each name here has a
 * gradient property test (VJP and JVP against finite differences, and VJP/JVP consistency).
 */
export const DIFFERENTIABLE_OPS = [
  "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "log1p", "sqrt", "rsqrt", "abs", "sin", "cos", "tanh",
  "sigmoid", "relu", "gelu", "silu", "square", "reciprocal", "maximum", "minimum", "clamp", "where",
  "sum", "mean", "max", "min", "variance", "logsumexp",
  "matmul", "matmulT", "dot",
  "reshape", "transpose", "permute", "mT", "expandDims", "squeeze", "broadcastTo", "sumToShape", "slice", "concat",
  "stack", "split", "take", "gather", "scatterAdd", "cast",
  "softmax", "logSoftmax", "softmaxCrossEntropy", "crossEntropy", "linearCrossEntropy", "layerNorm", "dropout",
] as const;
