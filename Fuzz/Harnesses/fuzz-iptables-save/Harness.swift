import FuzzDriver
import PortcullisAudit
import PortcullisIR
import PortcullisReaders

/// The iptables-save reader as audit and import use it: whatever reads is audited as well.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIptablesSave(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = text(data, size)
    for family in [TableFamily.ip, .ip6] {
        guard let (ruleset, _) = try? IptablesSaveReader(family: family).read(input) else { continue }
        _ = RiskAudit(ruleset: ruleset).findings()
    }
    return 0
}
