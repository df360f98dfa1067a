import FuzzDriver
import PortcullisPolicy
import PortcullisSyntax

/// The policy parser and checker on one file: every input loads and checks to a policy or to
/// diagnostics. Only the input itself can be read: an include becomes a diagnostic (were it
/// the input again under another path, each input would include itself without end).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPolicy(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = text(data, size)
    var read = false
    let (loaded, diagnostics) = PolicyLoader.load("fuzz.policy") { _ in
        guard !read else { throw UnreadableInclude() }
        read = true
        return input
    }
    if diagnostics.isEmpty { _ = Checker.check(loaded) }
    return 0
}

struct UnreadableInclude: Error {}
