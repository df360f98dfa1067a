import PortcullisIR
import PortcullisNet
import PortcullisPolicy

/// Set and map elements as the native layout writes them.
extension NativeTableBuilder {
    /// A set or map whose elements are deduplicated and never overlap, with `flags interval`
    /// only when an element needs it (a prefix or a port range): the kernel inserts into hash
    /// sets in constant time, into interval concatenations (pipapo) far more slowly.
    static func lookupSet(
        _ name: String, keyTypes: [NamedSet.KeyType], mapValue: NamedSet.MapValue? = nil, elements: [SetElement]
    ) -> NamedSet {
        let kept = mapValue == nil ? uncoveredElements(elements) : elements
        let interval = kept.contains { element in
            element.key.contains {
                switch $0 {
                case .address(let prefix): !prefix.isHost
                case .ports(let ports): !ports.isSingle
                default: false
                }
            }
        }
        return NamedSet(name: name, keyTypes: keyTypes, mapValue: mapValue, interval: interval, elements: kept)
    }

    /// Port specs with overlapping or adjacent ranges of one protocol merged, so that the
    /// elements of one statement never overlap (nft refuses overlapping interval elements).
    static func mergedPorts(_ specs: [PortSpec]) -> [PortSpec] {
        var merged: [PortSpec] = []
        for transport in TransportProtocol.allCases {
            let ranges = specs.filter { $0.transport == transport }.map(\.ports).sorted { $0.first < $1.first }
            var current: PortRange?
            for range in ranges {
                if let open = current, Int(range.first) <= Int(open.last) + 1 {
                    current = PortRange(open.first, max(open.last, range.last))
                } else {
                    if let open = current { merged.append(PortSpec(open, transport)) }
                    current = range
                }
            }
            if let open = current { merged.append(PortSpec(open, transport)) }
        }
        return merged
    }

    static func uncoveredElements(_ elements: [SetElement]) -> [SetElement] {
        var provenance: [[SetValue]: Provenance] = [:]
        for element in elements where provenance[element.key] == nil { provenance[element.key] = element.provenance }
        return NativeLayout.uncovered(elements.map(\.key)).map { SetElement(key: $0, provenance: provenance[$0]) }
    }
}
