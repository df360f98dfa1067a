import PortcullisIR
import PortcullisNet
import PortcullisPolicy

/// Portcullis' own nftables layout: one `inet portcullis` table for both address families,
/// meant for hosts where the daemon writes no rules of its own (`--iptables=false`).
///
/// Docker's layouts add rules per container, published port and network, so each new
/// connection walks a list that grows with the host. Here the rules are fixed by what the
/// policy uses (one per `allow`/`deny` statement and a constant set besides); containers,
/// published ports and networks are elements of sets and maps, looked up in constant time, so
/// starting a container or publishing a port changes elements, never rules.
///
/// The verdicts are those of the Docker layouts with Portcullis' rules in front (language
/// reference, section 5), which `DifferentialTests` checks flow by flow. Where they differ on
/// purpose (traffic routed straight to a container without a published port's DNAT, address
/// spoofing across bridges, containers reaching published ports past an allow-list or a
/// statement, which Docker's userland proxy lets through) docs/native.md has the table.
public struct NativeLayout: Layout {
    /// The layout's name, for the readers of its rules (import) as well as `--layout`.
    public static let name = "native"
    public var name: String { Self.name }
    public let summary =
        "Portcullis' nftables layout: one inet table of sets and verdict maps; rules do not grow with containers"
    public let firewalls: Set<Firewall> = [.nftables]

    public init() {}

    public func lower(_ policy: Policy) -> Result<Ruleset, DiagnosticError> {
        var table = Table(family: .inet, name: NativeNames.table)
        NativeTableBuilder(policy: policy).build(into: &table)
        return .success(Ruleset(tables: [table]))
    }

    /// Keys without those another key covers (a container inside a network named in the same
    /// statement), and without duplicates; the order of first appearance is kept. Import compares a
    /// flow set's elements with what a statement would give by the same rule.
    public static func uncovered(_ keys: [[SetValue]]) -> [[SetValue]] {
        var seen: Set<[SetValue]> = []
        let unique = keys.filter { seen.insert($0).inserted }
        // Only a key with a wider address or port range where keys differ can cover another
        // (every egress key of a statement has its destination network; a host has thousands
        // of keys, and most statements have no such key).
        let varying = Set(
            unique.first.map { first in
                first.indices.filter { at in unique.contains { $0.count <= at || $0[at] != first[at] } }
            } ?? [])
        let wide = unique.filter { key in
            key.indices.contains { at in
                guard varying.contains(at) else { return false }
                if case .address(let prefix) = key[at] { return !prefix.isHost }
                if case .ports(let ports) = key[at] { return !ports.isSingle }
                return false
            }
        }
        guard !wide.isEmpty else { return unique }
        return unique.filter { key in
            !wide.contains { other in other != key && zip(other, key).allSatisfy { $0.covers($1) } }
        }
    }
}

/// Builds the one table of the native layout; see `NativeLayout`.
struct NativeTableBuilder {
    let policy: Policy
    /// The address families the policy has networks in (IPv4 always).
    let families: [IPFamily]

    init(policy: Policy) {
        self.policy = policy
        families = policy.networks.contains { $0.subnet6 != nil } ? [.ipv4, .ipv6] : [.ipv4]
    }

    static func addressType(_ family: IPFamily) -> NamedSet.KeyType {
        family == .ipv4 ? .ipv4Address : .ipv6Address
    }

    static func everywhere(_ family: IPFamily) -> IPPrefix {
        IPPrefix(address: family == .ipv4 ? IPAddress(ipv4: 0) : IPAddress(ipv6: 0, 0), length: 0)
    }

    func comment(_ text: String) -> RuleComment? { RuleComment("portcullis: " + text) }

    static let layoutProvenance = Provenance(statement: "native layout")

    func build(into table: inout Table) {
        let userRules = families.map { UserRules(policy: policy, family: $0) }
        table.sets += networkSets()
        var forward = Chain(
            name: NativeNames.forward,
            base: BaseChain(
                type: .filter, hook: .forward, priority: 0,
                policy: policy.host.forwardPolicyDrop == false ? .accept : .drop))
        forward.rules.append(
            Rule(
                [.connectionState([.established, .related])], .accept,
                comment: comment("replies to accepted connections"), provenance: Self.layoutProvenance))
        forward.rules += antiSpoofing()
        forward.rules += unknownFromOutside(userRules, sets: &table.sets)
        // Flows and egress are about container sources, which the rules above keep on their
        // bridges: a connection from outside is decided at once, without walking them.
        forward.rules.append(
            Rule(
                [
                    .inSet(keys: [.inputInterface], set: NativeNames.bridges, negated: true),
                    .inSet(keys: [.outputInterface], set: NativeNames.bridges), .destinationTranslated(),
                ], .accept, comment: comment("published ports"), provenance: Self.layoutProvenance))
        forward.rules += flows(userRules, sets: &table.sets)
        forward.rules += egress(userRules, sets: &table.sets)
        forward.rules += unknownAddresses(userRules)
        forward.rules += dockerDefaults()

        var prerouting = Chain(
            name: NativeNames.prerouting, base: BaseChain(type: .nat, hook: .prerouting, priority: -100))
        var output = Chain(name: NativeNames.output, base: BaseChain(type: .nat, hook: .output, priority: -100))
        var publish = Chain(name: NativeNames.publish)
        prerouting.rules += remoteLoopback()
        prerouting.rules += allowLists(userRules, sets: &table.sets)
        prerouting.rules.append(
            Rule([.localAddress(.destination)], .jump(NativeNames.publish), provenance: Self.layoutProvenance))
        // With the userland proxy on, Docker leaves connections to a loopback address to it.
        if policy.host.userlandProxy {
            output.rules += families.map { family in
                Rule(
                    [.address(.destination, IPPrefix.loopback(family), negated: true), .localAddress(.destination)],
                    .jump(NativeNames.publish), provenance: Self.layoutProvenance)
            }
        } else {
            output.rules.append(
                Rule([.localAddress(.destination)], .jump(NativeNames.publish), provenance: Self.layoutProvenance))
        }
        publish.rules += publishRules(sets: &table.sets)

        var postrouting = Chain(
            name: NativeNames.postrouting, base: BaseChain(type: .nat, hook: .postrouting, priority: 100))
        postrouting.rules += masquerade(sets: &table.sets)

        table.chains = [forward, prerouting, output, postrouting, publish]
    }

    // MARK: Networks

    /// Bridges, their subnets and ICC, as elements; shared by several rules.
    func networkSets() -> [NamedSet] {
        var sets = [
            NamedSet(
                name: NativeNames.bridges, keyTypes: [.interfaceName], interval: false,
                elements: policy.networks.map {
                    SetElement(key: [.interface($0.bridge)], provenance: $0.origin.provenance)
                }),
            NamedSet(
                name: NativeNames.icc, keyTypes: [.interfaceName, .interfaceName], mapValue: .verdict, interval: false,
                elements: policy.networks.map {
                    SetElement(
                        key: [.interface($0.bridge), .interface($0.bridge)], value: .verdict($0.icc ? .accept : .drop),
                        provenance: $0.origin.provenance)
                }),
        ]
        if !proxiedNetworks.isEmpty {
            sets.append(
                NamedSet(
                    name: NativeNames.proxied, keyTypes: [.interfaceName], interval: false,
                    elements: proxiedNetworks.map {
                        SetElement(key: [.interface($0.bridge)], provenance: $0.origin.provenance)
                    }))
        }
        if policy.networks.contains(where: \.internal) {
            sets.append(
                NamedSet(
                    name: NativeNames.internal, keyTypes: [.interfaceName], interval: false,
                    elements: policy.networks.filter(\.internal).map {
                        SetElement(key: [.interface($0.bridge)], provenance: $0.origin.provenance)
                    }))
        }
        for family in families {
            let subnets = policy.networks.compactMap { network in
                (family == .ipv4 ? network.subnet4 : network.subnet6).map { (network, $0) }
            }
            sets.append(
                NamedSet(
                    name: NativeNames.named(NativeNames.sites, family),
                    keyTypes: [Self.addressType(family), .interfaceName],
                    interval: true,
                    elements: subnets.map { network, subnet in
                        SetElement(
                            key: [.address(subnet), .interface(network.bridge)], provenance: network.origin.provenance)
                    }))
            sets.append(
                NamedSet(
                    name: NativeNames.named(NativeNames.subnets, family), keyTypes: [Self.addressType(family)],
                    interval: true,
                    elements: subnets.map { network, subnet in
                        SetElement(key: [.address(subnet)], provenance: network.origin.provenance)
                    }))
        }
        return sets
    }

    /// Networks whose containers reach published ports through Docker's userland proxy: with
    /// the proxy on, Docker does not translate their connections to the host (`-i BRIDGE -j
    /// RETURN` in nat `DOCKER`, written for networks that masquerade) and the proxy reaches
    /// the container from the host, whatever the two bridges are. Native translates them, and
    /// accepts them as the proxy would; from other networks the translated connection meets
    /// ICC and isolation, as in Docker.
    var proxiedNetworks: [Network] {
        policy.host.userlandProxy ? policy.networks.filter { $0.masquerade && !$0.internal } : []
    }

    /// Flows and egress are keyed by address, so an address must not be claimed from the wrong
    /// interface: a bridge speaks only from its subnets, and its subnets only from it.
    func antiSpoofing() -> [Rule] {
        families.flatMap { family -> [Rule] in
            let sites = NativeNames.named(NativeNames.sites, family)
            let text = comment("\(family == .ipv4 ? "IPv4" : "IPv6") sources belong to their bridges")
            return [
                Rule(
                    [
                        .inSet(keys: [.inputInterface], set: NativeNames.bridges),
                        .inSet(keys: [.sourceAddress, .inputInterface], set: sites, negated: true),
                    ], .drop, comment: text, provenance: Self.layoutProvenance),
                Rule(
                    [
                        .inSet(keys: [.inputInterface], set: NativeNames.bridges, negated: true),
                        .inSet(keys: [.sourceAddress], set: NativeNames.named(NativeNames.subnets, family)),
                    ], .drop, comment: text, provenance: Self.layoutProvenance),
            ]
        }
    }

    /// `unknown-containers drop`, for connections from outside, before the published ports'
    /// accept: a port published to a container the rules do not know yet is closed. The set of
    /// known addresses is written here, once per family; containers coming and going change
    /// its elements only.
    func unknownFromOutside(_ userRules: [UserRules], sets: inout [NamedSet]) -> [Rule] {
        userRules.flatMap { user -> [Rule] in
            let name = NativeNames.named(NativeNames.known, user.family)
            guard let known = user.knownAddressSet(named: name) else { return [] }
            sets.append(known)
            return user.drop(
                [.inSet(keys: [.inputInterface], set: NativeNames.bridges, negated: true)]
                    + unknown(.destinationAddress, user.family),
                comment: comment("unknown-containers drop: published ports of addresses the rules do not know"),
                provenance: user.unknownProvenance)
        }
    }

    /// `unknown-containers drop`, once the policy's flows and egress have accepted nothing:
    /// from, then to, addresses on a managed subnet that are not known.
    func unknownAddresses(_ userRules: [UserRules]) -> [Rule] {
        userRules.flatMap { user -> [Rule] in
            guard policy.host.unknownContainersDrop else { return [] }
            return [(SetKeyField.sourceAddress, "from"), (.destinationAddress, "to")].flatMap { field, text in
                user.drop(
                    unknown(field, user.family),
                    comment: comment("unknown-containers drop: \(text) addresses the rules do not know"),
                    provenance: user.unknownProvenance)
            }
        }
    }

    /// An address of `field` on a managed subnet, not in the family's set of known addresses.
    private func unknown(_ field: SetKeyField, _ family: IPFamily) -> [Match] {
        [
            .inSet(keys: [field], set: NativeNames.named(NativeNames.subnets, family)),
            .inSet(keys: [field], set: NativeNames.named(NativeNames.known, family), negated: true),
        ]
    }

    /// Docker's own verdicts, once Portcullis' rules have had their say: ICC per bridge,
    /// internal networks sealed, networks isolated from each other, containers free to go out,
    /// and traffic from outside only through a published port.
    func dockerDefaults() -> [Rule] {
        var rules: [Rule] = []
        if policy.host.userlandProxy {
            // Docker never translates a connection from the publishing container's own bridge
            // (`! -i BRIDGE` on its DNAT rules): the proxy carries it.
            rules += families.map { family in
                Rule(
                    [
                        .destinationTranslated(),
                        .inSet(
                            keys: [.sourceAddress, .outputInterface], set: NativeNames.named(NativeNames.sites, family)),
                    ], .accept, comment: comment("published ports, from the same network"),
                    provenance: Self.layoutProvenance)
            }
        }
        if !proxiedNetworks.isEmpty {
            rules.append(
                Rule(
                    [.inSet(keys: [.inputInterface], set: NativeNames.proxied), .destinationTranslated()], .accept,
                    comment: comment("published ports, from containers too"), provenance: Self.layoutProvenance))
        }
        rules.append(
            Rule(
                [], .verdictMap(keys: [.inputInterface, .outputInterface], map: NativeNames.icc),
                provenance: Self.layoutProvenance))
        if policy.networks.contains(where: \.internal) {
            rules += [
                Rule(
                    [.inSet(keys: [.inputInterface], set: NativeNames.internal)], .drop,
                    comment: comment("internal networks stay on their bridge"), provenance: Self.layoutProvenance),
                Rule(
                    [.inSet(keys: [.outputInterface], set: NativeNames.internal)], .drop,
                    comment: comment("internal networks stay on their bridge"), provenance: Self.layoutProvenance),
            ]
        }
        rules += [
            Rule(
                [
                    .inSet(keys: [.inputInterface], set: NativeNames.bridges),
                    .inSet(keys: [.outputInterface], set: NativeNames.bridges),
                ],
                .drop, comment: comment("networks are isolated from each other"), provenance: Self.layoutProvenance),
            Rule(
                [.inSet(keys: [.inputInterface], set: NativeNames.bridges)], .accept,
                comment: comment("containers reach the outside"), provenance: Self.layoutProvenance),
            Rule(
                [.inSet(keys: [.outputInterface], set: NativeNames.bridges), .destinationTranslated()], .accept,
                comment: comment("published ports"), provenance: Self.layoutProvenance),
        ]
        return rules
    }

    // MARK: Flows and egress

    /// One rule per `allow`/`deny` statement and family, in file order (first match wins); the
    /// statement's address pairs (and ports) are the elements of its own set.
    func flows(_ userRules: [UserRules], sets: inout [NamedSet]) -> [Rule] {
        var rules: [Rule] = []
        for (index, rule) in policy.rules.enumerated() where rule.kind != .egress {
            for user in userRules {
                let family = user.family
                let pairs = user.pairs(rule).map { ($0.source.prefix, $0.destination.prefix) }
                guard !pairs.isEmpty else { continue }
                let ports = Self.mergedPorts(rule.ports)
                let name = NativeNames.named(NativeNames.flow(index + 1), family)
                var keyTypes = [Self.addressType(family), Self.addressType(family)]
                var keys: [SetKeyField] = [.sourceAddress, .destinationAddress]
                if !ports.isEmpty {
                    keyTypes += [.transport, .service]
                    keys += [.transport, .destinationPort]
                }
                let elements = pairs.flatMap { source, destination -> [SetElement] in
                    let addresses: [SetValue] = [.address(source), .address(destination)]
                    let keys =
                        ports.isEmpty
                        ? [addresses] : ports.map { addresses + [.transport($0.transport), .ports($0.ports)] }
                    return keys.map { SetElement(key: $0, provenance: rule.origin.provenance) }
                }
                sets.append(Self.lookupSet(name, keyTypes: keyTypes, elements: elements))
                let matches: [Match] = [.inSet(keys: keys, set: name)]
                let text = comment(rule.text)
                if rule.kind == .allow {
                    rules.append(Rule(matches, .accept, comment: text, provenance: rule.origin.provenance))
                } else {
                    rules += user.drop(matches, comment: text, provenance: rule.origin.provenance)
                }
            }
        }
        return rules
    }

    /// Where egress is about: leaving through a named uplink, else leaving for anything but a bridge.
    var leavingTheHost: Match {
        policy.host.externalInterfaces.isEmpty
            ? .inSet(keys: [.outputInterface], set: NativeNames.bridges, negated: true)
            : .inSet(keys: [.outputInterface], set: NativeNames.external)
    }

    /// Egress accepts, then a drop for every restricted source. Accepts are split by the shape of
    /// their key: with or without ports, to anywhere (no destination field, so hosts stay in
    /// hash sets) or to prefixes.
    func egress(_ userRules: [UserRules], sets: inout [NamedSet]) -> [Rule] {
        var rules: [Rule] = []
        var egressSets: [NamedSet] = []
        for user in userRules {
            let family = user.family
            let address = Self.addressType(family)
            var accepts: [String: (keyTypes: [NamedSet.KeyType], keys: [SetKeyField], elements: [SetElement])] = [:]
            var order: [String] = []
            func accept(_ name: String, _ keyTypes: [NamedSet.KeyType], _ keys: [SetKeyField], _ element: SetElement) {
                if accepts[name] == nil {
                    accepts[name] = (keyTypes, keys, [])
                    order.append(name)
                }
                accepts[name]!.elements.append(element)
            }
            var restricted: [SetElement] = []
            var restrictedSeen: Set<IPPrefix> = []
            for rule in policy.rules where rule.kind == .egress {
                let destinations: [IPPrefix?]
                switch rule.egressDestination {
                case .anywhere: destinations = [nil]
                case .prefixes(let prefixes): destinations = prefixes.filter { $0.family == family }
                }
                let ports = Self.mergedPorts(rule.ports)
                let provenance = rule.origin.provenance
                for source in rule.sources.flatMap(user.sites) where policy.network(source.network)?.internal == false {
                    if restrictedSeen.insert(source.prefix).inserted {
                        restricted.append(SetElement(key: [.address(source.prefix)], provenance: provenance))
                    }
                    for destination in destinations {
                        let to: [SetValue] = destination.map { [.address($0)] } ?? []
                        let toTypes: [NamedSet.KeyType] = destination == nil ? [] : [address]
                        let toKeys: [SetKeyField] = destination == nil ? [] : [.destinationAddress]
                        let base = destination == nil ? NativeNames.egressAnywhere : NativeNames.egress
                        if ports.isEmpty {
                            accept(
                                NativeNames.named(base, family), [address] + toTypes, [.sourceAddress] + toKeys,
                                SetElement(key: [.address(source.prefix)] + to, provenance: provenance))
                        }
                        for spec in ports {
                            accept(
                                NativeNames.named(NativeNames.withPorts(base), family),
                                [address] + toTypes + [.transport, .service],
                                [.sourceAddress] + toKeys + [.transport, .destinationPort],
                                SetElement(
                                    key: [.address(source.prefix)] + to + [
                                        .transport(spec.transport), .ports(spec.ports),
                                    ],
                                    provenance: provenance))
                        }
                    }
                }
            }
            guard !restricted.isEmpty else { continue }
            for name in order {
                let lookup = accepts[name]!
                egressSets.append(Self.lookupSet(name, keyTypes: lookup.keyTypes, elements: lookup.elements))
                rules.append(
                    Rule(
                        [leavingTheHost, .inSet(keys: lookup.keys, set: name)], .accept, comment: comment("egress"),
                        provenance: Self.layoutProvenance))
            }
            let name = NativeNames.named(NativeNames.egressRestricted, family)
            egressSets.append(Self.lookupSet(name, keyTypes: [address], elements: restricted))
            rules += user.drop(
                [leavingTheHost, .inSet(keys: [.sourceAddress], set: name)], comment: comment("other egress"),
                provenance: Self.layoutProvenance)
        }
        if !egressSets.isEmpty && !policy.host.externalInterfaces.isEmpty {
            sets.append(
                NamedSet(
                    name: NativeNames.external, keyTypes: [.interfaceName], interval: false,
                    elements: policy.host.externalInterfaces.map { SetElement(key: [.interface($0)]) }))
        }
        sets += egressSets
        return rules
    }

    // MARK: Published ports

    /// With `route_localnet` (the userland proxy off), a remote host could reach a port
    /// published on a loopback address (moby#45610): such packets are not translated.
    func remoteLoopback() -> [Rule] {
        [
            Rule(
                [.interface(.source, "lo", negated: true), .address(.destination, IPPrefix.loopback(.ipv4))], .return,
                comment: comment("loopback publishes are for the host only"), provenance: Self.layoutProvenance)
        ]
    }

    /// A published port with `from`: connections from anyone else are dropped before the DNAT,
    /// while their destination is still the host address and port the client wrote.
    func allowLists(_ userRules: [UserRules], sets: inout [NamedSet]) -> [Rule] {
        var rules: [Rule] = []
        for user in userRules {
            let family = user.family
            var restricted: [SetElement] = []
            var allowed: [SetElement] = []
            for container in policy.containers {
                for publish in container.publishes where !publish.allowedSources.isEmpty {
                    guard let (_, network) = DockerClassicRules.portMappingEndpoint(container, policy: policy),
                        let hostAddress = hostPrefix(publish, network: network, family: family)
                    else { continue }
                    let target: [SetValue] = [
                        .address(hostAddress), .transport(publish.transport), .ports(publish.hostPorts),
                    ]
                    restricted.append(SetElement(key: target, provenance: publish.origin.provenance))
                    for source in publish.allowedSources where source.family == family {
                        allowed.append(
                            SetElement(key: [.address(source)] + target, provenance: publish.origin.provenance))
                    }
                }
            }
            guard !restricted.isEmpty else { continue }
            let address = Self.addressType(family)
            let restrictedName = NativeNames.named(NativeNames.allowListPorts, family)
            let allowedName = NativeNames.named(NativeNames.allowListSources, family)
            sets.append(
                Self.lookupSet(restrictedName, keyTypes: [address, .transport, .service], elements: restricted))
            sets.append(
                Self.lookupSet(allowedName, keyTypes: [address, address, .transport, .service], elements: allowed))
            rules += user.drop(
                [
                    .localAddress(.destination),
                    .inSet(keys: [.destinationAddress, .transport, .destinationPort], set: restrictedName),
                    .inSet(
                        keys: [.sourceAddress, .destinationAddress, .transport, .destinationPort], set: allowedName,
                        negated: true),
                ], comment: comment("published port with an allow-list"), provenance: Self.layoutProvenance)
        }
        return rules
    }

    /// The host addresses a publish listens on, as a key: one address, or every address.
    func hostPrefix(_ publish: Publish, network: Network, family: IPFamily) -> IPPrefix? {
        guard let address = publish.hostAddress ?? network.hostBinding, !address.isUnspecified else {
            return Self.everywhere(family)
        }
        return address.family == family ? IPPrefix(host: address) : nil
    }

    /// Published ports as DNAT maps per family, in three shapes so that the thousands of single
    /// ports stay in hash maps: publishes on every host address are keyed by (protocol, port),
    /// those on one address by (address, protocol, port); each pair of maps yields the
    /// container address and port (a range is one element per port). A range that keeps its
    /// ports is one interval element of a third map, which yields the address alone.
    func publishRules(sets: inout [NamedSet]) -> [Rule] {
        var rules: [Rule] = []
        for family in families {
            var anyAddress: (addresses: [SetElement], ports: [SetElement]) = ([], [])
            var oneAddress: (addresses: [SetElement], ports: [SetElement]) = ([], [])
            var ranges: [SetElement] = []
            for container in policy.containers {
                guard let (attachment, network) = DockerClassicRules.portMappingEndpoint(container, policy: policy),
                    let containerAddress = family == .ipv4 ? attachment.address4 : attachment.address6
                else { continue }
                for publish in container.publishes {
                    guard let host = hostPrefix(publish, network: network, family: family) else { continue }
                    let provenance = publish.origin.provenance
                    let target = SetValue.address(IPPrefix(host: containerAddress))
                    let transport = SetValue.transport(publish.transport)
                    if publish.hostPorts == publish.containerPorts && !publish.hostPorts.isSingle {
                        ranges.append(
                            SetElement(
                                key: [.address(host), transport, .ports(publish.hostPorts)], value: .data([target]),
                                provenance: provenance))
                        continue
                    }
                    for offset in 0..<publish.hostPorts.count {
                        let hostPort = SetValue.ports(PortRange(UInt16(Int(publish.hostPorts.first) + offset)))
                        let containerPort = SetValue.ports(
                            PortRange(UInt16(Int(publish.containerPorts.first) + offset)))
                        let key = host.length == 0 ? [transport, hostPort] : [.address(host), transport, hostPort]
                        let address = SetElement(key: key, value: .data([target]), provenance: provenance)
                        let port = SetElement(key: key, value: .data([containerPort]), provenance: provenance)
                        if host.length == 0 {
                            anyAddress.addresses.append(address)
                            anyAddress.ports.append(port)
                        } else {
                            oneAddress.addresses.append(address)
                            oneAddress.ports.append(port)
                        }
                    }
                }
            }
            let address = Self.addressType(family)
            let text = comment("published ports")
            let shapes: [(String, [NamedSet.KeyType], [SetKeyField], (addresses: [SetElement], ports: [SetElement]))] =
                [
                    (NativeNames.publishes, [.transport, .service], [.transport, .destinationPort], anyAddress),
                    (
                        NativeNames.publishesOn, [address, .transport, .service],
                        [.destinationAddress, .transport, .destinationPort],
                        oneAddress
                    ),
                ]
            for (base, keyTypes, keys, elements) in shapes {
                let addressMap = NativeNames.named(NativeNames.addressMap(base), family)
                let portMap = NativeNames.named(NativeNames.portMap(base), family)
                sets.append(
                    Self.lookupSet(
                        addressMap, keyTypes: keyTypes, mapValue: .data([address]), elements: elements.addresses))
                sets.append(
                    Self.lookupSet(portMap, keyTypes: keyTypes, mapValue: .data([.service]), elements: elements.ports))
                rules.append(
                    Rule(
                        [.transports([.tcp, .udp, .sctp])],
                        .dnatMap(family, keys: keys, addressMap: addressMap, portMap: portMap), comment: text,
                        provenance: Self.layoutProvenance))
            }
            let rangeMap = NativeNames.named(NativeNames.publishRange, family)
            sets.append(
                NamedSet(
                    name: rangeMap, keyTypes: [address, .transport, .service], mapValue: .data([address]),
                    interval: true, elements: ranges))
            rules.append(
                Rule(
                    [],
                    .dnatMap(
                        family, keys: [.destinationAddress, .transport, .destinationPort], addressMap: rangeMap,
                        portMap: nil),
                    comment: text, provenance: Self.layoutProvenance))
        }
        return rules
    }

    /// Masquerade what leaves a network for another interface (Docker's `-s SUBNET ! -o BRIDGE`),
    /// and hairpin connections that a published port sent back onto the client's own bridge.
    func masquerade(sets: inout [NamedSet]) -> [Rule] {
        var rules: [Rule] = []
        for family in families {
            let sites = NativeNames.named(NativeNames.sites, family)
            rules.append(
                Rule(
                    [.destinationTranslated(), .inSet(keys: [.sourceAddress, .outputInterface], set: sites)],
                    .masquerade, comment: comment("hairpin through a published port"),
                    provenance: Self.layoutProvenance))
            rules.append(
                Rule(
                    [.inSet(keys: [.sourceAddress, .outputInterface], set: sites)], .return,
                    comment: comment("traffic that stays on its bridge"), provenance: Self.layoutProvenance))
            let name = NativeNames.named(NativeNames.masquerade, family)
            sets.append(
                NamedSet(
                    name: name, keyTypes: [Self.addressType(family)], interval: true,
                    elements: policy.networks.compactMap { network in
                        guard network.masquerade, !network.internal,
                            let subnet = family == .ipv4 ? network.subnet4 : network.subnet6
                        else { return nil }
                        return SetElement(key: [.address(subnet)], provenance: network.origin.provenance)
                    }))
            rules.append(
                Rule(
                    [.inSet(keys: [.sourceAddress], set: name)], .masquerade, comment: comment("masquerade"),
                    provenance: Self.layoutProvenance))
        }
        if !policy.host.userlandProxy {
            // The host's own connections to a published loopback address leave with 127.0.0.1.
            rules.append(
                Rule(
                    [.localAddress(.source), .inSet(keys: [.outputInterface], set: NativeNames.bridges)], .masquerade,
                    comment: comment("host connections to published ports"), provenance: Self.layoutProvenance))
        }
        return rules
    }
}
