/// One libFuzzer input as text: what a harness's `LLVMFuzzerTestOneInput` hands on. Invalid
/// UTF-8 is repaired, as the command line repairs it when it reads a file.
public func text(_ data: UnsafePointer<UInt8>?, _ size: Int) -> String {
    guard let data else { return "" }
    return String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
}
