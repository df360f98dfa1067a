import PortcullisNet

/// The names the native layout gives its table, chains, sets and maps: the layout writes them
/// and import reads them back by these, so a rename changes both directions at once.
public enum NativeNames {
    public static let table = "portcullis"

    public static let forward = "forward"
    public static let prerouting = "prerouting"
    public static let output = "output"
    public static let postrouting = "postrouting"
    /// The DNAT chain that prerouting and output jump to.
    public static let publish = "publish"
    public static let chains = [forward, prerouting, output, postrouting, publish]

    // Sets of both families at once.
    public static let bridges = "bridges"
    public static let icc = "icc"
    public static let proxied = "proxied"
    public static let `internal` = "internal"
    public static let external = "external"

    // Sets of one family: the base of `named(_:_:)`.
    public static let sites = "sites"
    public static let subnets = "subnets"
    public static let masquerade = "masquerade"
    /// The publish maps on every address (`publishes`) and on one address (`publishesOn`),
    /// each an address map and a port map (`addressMap(_:_:)`, `portMap(_:_:)`).
    public static let publishes = "publish"
    public static let publishesOn = "publish-on"
    public static let publishRange = "publish-range"
    public static let allowListPorts = "allow-list-ports"
    public static let allowListSources = "allow-list-sources"
    /// Egress sets: to anywhere or to destinations, each with a twin for named ports (`withPorts(_:)`).
    public static let egressAnywhere = "egress-anywhere"
    public static let egress = "egress"
    public static let egressRestricted = "egress-restricted"
    /// The addresses `unknown-containers drop` lets through: containers' and gateways'.
    public static let known = "known"
    static let familySets = [
        sites, subnets, masquerade, addressMap(publishes), portMap(publishes), addressMap(publishesOn),
        portMap(publishesOn), publishRange, allowListPorts, allowListSources, egressAnywhere,
        withPorts(egressAnywhere), egress, withPorts(egress), egressRestricted, known,
    ]

    /// A set of one family: `sites-v4`, `publish-address-v6`.
    public static func named(_ base: String, _ family: IPFamily) -> String {
        "\(base)-\(family == .ipv4 ? "v4" : "v6")"
    }

    public static func addressMap(_ base: String) -> String { base + "-address" }
    public static func portMap(_ base: String) -> String { base + "-port" }
    public static func withPorts(_ base: String) -> String { base + "-ports" }

    /// The set base of the Nth flow statement (from 1): `flow-N`.
    public static func flow(_ index: Int) -> String { "flow-\(index)" }

    /// N of a `flow-N-v4` / `flow-N-v6` set.
    public static func flowIndex(_ name: String) -> Int? {
        guard name.hasPrefix("flow-"), name.hasSuffix("-v4") || name.hasSuffix("-v6") else { return nil }
        return Int(name.dropFirst(5).dropLast(3))
    }

    /// Whether the layout writes a set or map of this name.
    public static func isLayoutSet(_ name: String) -> Bool {
        [bridges, icc, proxied, `internal`, external].contains(name)
            || IPFamily.allCases.contains { family in familySets.contains { named($0, family) == name } }
            || flowIndex(name) != nil
    }
}
