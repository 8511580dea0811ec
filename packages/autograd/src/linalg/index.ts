/** Dense float64 linear-algebra kernels over typed arrays (QR, general and symmetric eigenvalues). */
export { qrRaw, qrPositive, qrShapes, type QrMode, type QrResult } from "./qr.js";
export { eigvalsRaw, eigvalsBatchedRaw, type EigvalsResult, type EigvalsOptions } from "./eig.js";
export { symEigRaw, type SymEigResult, type SymEigOptions } from "./symeig.js";
