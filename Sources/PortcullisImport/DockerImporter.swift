import PortcullisIR
import PortcullisLayouts
import PortcullisNet

/// Turns a host that Docker has been managing into a policy that describes it: networks with
/// their bridges, subnets and options, containers with addresses and publishes, host settings,
/// and the rules users added in `DOCKER-USER` (Portcullis' `PORTCULLIS-FORWARD` on docker-1.5)
/// as `allow`, `deny` and `egress` statements where the language can say them.
///
/// Reads Docker's iptables rules of every era Portcullis has a layout for (docker-1.5,
/// docker-20.10, docker-23, docker-25, docker-28, docker-29 on iptables), from `iptables-save` text or from the same
/// tables listed as nft JSON. What a ruleset cannot tell (container names, containers that left
/// no rule, subnets of networks that neither masquerade nor are internal) is named
/// deterministically or reported, never guessed silently; so is every user rule the language
/// cannot say.
struct DockerImporter: Sendable {
    let ruleset: Ruleset
    /// The firewaller that wrote the rules: Docker 29's own nftables tables (`docker-bridges`)
    /// are read as the iptables chains it writes for the same host, and imported for the
    /// nftables backend.
    let firewaller: Firewall
    /// What the import has read so far (see `importPolicy(_:)`).
    var networks: [ImportedNetwork] = []
    var notImported: [String] = []
    var assumed: [String] = []

    /// Rules read from nft JSON list interfaces before addresses; the import reads matches in
    /// `iptables-save` order (addresses, interfaces, protocol, then the modules), so both
    /// sources are put in that order first.
    init(ruleset: Ruleset) {
        let nftables = DockerBridgesImport.iptablesForm(of: ruleset)
        firewaller = nftables == nil ? .iptables : .nftables
        var ordered = nftables ?? ruleset
        for t in ordered.tables.indices {
            for c in ordered.tables[t].chains.indices {
                for r in ordered.tables[t].chains[c].rules.indices {
                    let matches = ordered.tables[t].chains[c].rules[r].matches
                    let core = matches.filter { $0.iptablesCoreOrder != nil }.sorted {
                        $0.iptablesCoreOrder! < $1.iptablesCoreOrder!
                    }
                    ordered.tables[t].chains[c].rules[r].matches = core + matches.filter { $0.iptablesCoreOrder == nil }
                }
            }
        }
        self.ruleset = ordered
    }

    /// Which Docker era wrote the ruleset, from the chains it has: the name of its layout.
    var detectedLayout: String? {
        guard let filter, filter.chain(DockerChain.docker) != nil else { return nil }
        if filter.chain(DockerChain.forward) != nil {
            return filter.chain(DockerChain.isolationStage1) != nil ? Docker28Layout.name : Docker29Layout.name
        }
        if filter.chain(DockerChain.isolationStage1) != nil { return classicEra.name }
        return Docker15Layout.name
    }

    /// The classic layout's era, from its ip6tables part: internal drops that name both
    /// interfaces (25.0 on), else a `DOCKER-USER` with Docker's RETURN alone (23.0 on; 20.10's
    /// layout adds one only for the policy's own rules). Without ip6tables the eras write the
    /// same rules: 20.10's.
    var classicEra: Docker2010Layout.Era {
        guard let filter6 = ruleset.table(.ip6, "filter") else { return .docker2010 }
        if (filter6.chain(DockerChain.isolationStage1)?.rules ?? []).contains(where: {
            Self.internalDrop($0) != nil && $0.matches.count == 3
        }) {
            return .docker25
        }
        if let user = filter6.chain(DockerChain.user),
            user.rules.allSatisfy({ $0.matches.isEmpty && $0.action == .return })
        {
            return .docker23
        }
        return .docker2010
    }

    var filter: Table? { ruleset.table(.ip, "filter") }
    var nat: Table? { ruleset.table(.ip, "nat") }
    var raw: Table? { ruleset.table(.ip, "raw") }
    /// Docker 20.10 ran with `--ip6tables`: its chains are in ip6tables.
    var ip6tables: Bool { ruleset.table(.ip6, "filter")?.chain(DockerChain.docker) != nil }

    /// The containers one family's rules show, in creation order: raw direct-access drops,
    /// DNAT rules (publishes) and, on routed networks, the per-port ACCEPTs (no DNAT there).
    func containers(_ family: TableFamily, networks: [ImportedNetwork], notImported: inout [String])
        -> [ImportedContainer]
    {
        var containers: ImportedContainers = []
        func container(_ address: IPAddress) -> Int {
            if let at = containers.index(holding: address) { return at }
            containers.append(ImportedContainer(address: address))
            return containers.count - 1
        }
        for rule in ruleset.table(family, "raw")?.chain("PREROUTING")?.rules ?? []
        where rule.action == .drop && rule.matches.count == 2 {
            if case .address(.destination, let prefix, false) = rule.matches[0], prefix.isHost,
                case .interface(.source, let bridge, true) = rule.matches[1], bridge != "lo",
                networks.contains(where: { $0.bridge == bridge })
            {
                containers[container(prefix.address)].bridge = bridge
            }
        }
        for rule in ruleset.table(family, "nat")?.chain(DockerChain.docker)?.rules ?? [] {
            guard case .dnat(let address, let ports)? = rule.action, let containerPort = ports?.first else { continue }
            var hostAddress: IPAddress?
            var hostPort: UInt16?
            var transport: TransportProtocol?
            for match in rule.matches {
                switch match {
                case .address(.destination, let prefix, false): hostAddress = prefix.address
                case .port(.destination, let range): hostPort = range.first
                case .transport(let t, false): transport = t
                default: break
                }
            }
            guard let hostPort, let transport else {
                notImported.append("nat DOCKER: a DNAT rule without a port")
                continue
            }
            containers[container(address)].publishes.append(
                ImportedPublish(
                    hostAddress: hostAddress, hostPort: hostPort, containerPort: containerPort, transport: transport))
        }
        // Routed networks: each published port's ACCEPT is inserted at the top of DOCKER.
        let routed = Set(networks.filter { $0.gatewayMode == "routed" }.map(\.bridge))
        for rule in (ruleset.table(family, "filter")?.chain(DockerChain.docker)?.rules ?? []).reversed()
        where rule.action == .accept && rule.matches.count == 5 {
            guard case .address(.destination, let prefix, false) = rule.matches[0], prefix.isHost,
                case .interface(.source, let input, true) = rule.matches[1],
                case .interface(.destination, let bridge, false) = rule.matches[2], input == bridge,
                case .transport(let transport, false) = rule.matches[3],
                case .port(.destination, let ports) = rule.matches[4]
            else { continue }
            guard routed.contains(bridge) else {
                // Elsewhere the ACCEPT of a published port names the bridge of the container its
                // DNAT maps to (Docker 20.10 writes no raw drops that would).
                if let at = containers.index(holding: prefix.address), containers[at].bridge == nil {
                    containers[at].bridge = bridge
                }
                continue
            }
            let at = container(prefix.address)
            containers[at].bridge = bridge
            containers[at].publishes.append(
                ImportedPublish(hostAddress: nil, hostPort: nil, containerPort: ports.first, transport: transport))
        }
        return containers.items
    }

    func importPolicy(as layout: any Layout) -> ImportResult {
        // Docker 28 and 29 write ip6tables rules for networks with an IPv6 subnet, Docker 20.10
        // with its experimental --ip6tables (its chains are there); Docker 1.5 writes none, so
        // ip6tables tables are not imported for it.
        var ruleset = self.ruleset
        if !layout.isModernDocker && !(layout.isDocker2010 && ip6tables) {
            ruleset.tables.removeAll { $0.family == .ip6 }
        }
        var run = DockerImporter(ordered: ruleset, firewaller: firewaller)
        return run.importPolicy(layout)
    }

    init(ordered ruleset: Ruleset, firewaller: Firewall) {
        self.ruleset = ruleset
        self.firewaller = firewaller
    }

    /// The host, read phase by phase in the order its notes are written: networks, containers
    /// (with their IPv6 addresses), names, then the user chain's rules.
    mutating func importPolicy(_ layout: any Layout) -> ImportResult {
        readNetworkOrder(layout)
        readNetworkRules()
        if layout.isModernDocker { readGatewayModes() }
        // The default bridge is created when the daemon starts.
        if let docker0 = networks.firstIndex(where: { $0.bridge == "docker0" }) {
            networks.insert(networks.remove(at: docker0), at: 0)
        }
        var containers = pairedContainers(layout)
        if layout.isDocker2010 { assumeIPv6SubnetsNotInTheRules(holding: containers) }
        nameNetworks(holding: containers)
        if layout.isDocker2010 {
            containers = PublishOrder.docker2010(containers) { containers, index in
                dnatReproduced(layout, containers, index)
            }
            noteDaemonChosenPorts(containers)
        }
        var users = UserRuleImport(networks: networks, containers: containers, layout: layout)
        for family in [TableFamily.ip, .ip6] {
            let filter = ruleset.table(family, "filter")
            users.read(
                filter?.chain(layout.userChain)?.rules ?? [],
                raw: ruleset.table(family, "raw")?.chain("PREROUTING")?.rules ?? [], family: family,
                sets: filter?.sets ?? [])
        }
        users.known.declare(
            networks: &networks, containers: &users.containers, assumed: &assumed, notImported: &notImported)
        containers = users.containers.items
        return result(layout, containers: containers, users: users)
    }

    /// The network of a bridge, added in the order first named.
    mutating func index(_ bridge: String) -> Int {
        if let existing = networks.firstIndex(where: { $0.bridge == bridge }) { return existing }
        networks.append(ImportedNetwork(bridge: bridge))
        return networks.count - 1
    }

    /// Networks in creation order, as each era's chains list them.
    mutating func readNetworkOrder(_ layout: any Layout) {
        if layout.isDocker15 {
            for rule in filter?.chain("FORWARD")?.rules ?? [] {
                if rule.action == .jump(DockerChain.docker),
                    case .interface(.destination, let bridge, false)? = rule.matches.first
                {
                    _ = index(bridge)
                }
            }
        } else if layout.isDocker2010 {
            // Docker inserts each network's isolation rules at the top of STAGE-1.
            for rule in (filter?.chain(DockerChain.isolationStage1)?.rules ?? []).reversed() {
                if rule.action == .jump(DockerChain.isolationStage2),
                    case .interface(.source, let bridge, false)? = rule.matches.first
                {
                    _ = index(bridge)
                }
                if let (_, bridge) = Self.internalDrop(rule) { _ = index(bridge) }
            }
        } else {
            // DOCKER-FORWARD gets each network's ICC / outgoing rules appended (ip6tables holds
            // the networks with an IPv6 subnet, in the same order).
            for family in [TableFamily.ip, .ip6] {
                for rule in ruleset.table(family, "filter")?.chain(DockerChain.forward)?.rules ?? [] {
                    if case .interface(.source, let bridge, false)? = rule.matches.first { _ = index(bridge) }
                }
            }
        }
    }

    /// Internal networks, ICC and masquerading subnets, in both families.
    mutating func readNetworkRules() {
        for family in [TableFamily.ip, .ip6] {
            let filter = ruleset.table(family, "filter")
            for chain in [DockerChain.isolationStage1, DockerChain.internal] {
                for rule in filter?.chain(chain)?.rules ?? [] {
                    if rule.action == .drop,
                        rule.matches.count == 2,
                        case .interface(.source, let input, true) = rule.matches[0],
                        case .interface(.destination, let bridge, false) = rule.matches[1], input == bridge
                    {
                        // Docker's nftables firewaller: internal, its subnet in no rule.
                        networks[index(bridge)].internal = true
                    }
                    if let (subnet, bridge) = Self.internalDrop(rule) {
                        let at = index(bridge)
                        networks[at].internal = true
                        if family == .ip { networks[at].subnet = subnet } else { networks[at].subnet6 = subnet }
                    }
                }
            }
            for chain in ["FORWARD", DockerChain.forward] {
                for rule in filter?.chain(chain)?.rules ?? [] where rule.matches.count == 2 {
                    if case .interface(.source, let input, false) = rule.matches[0],
                        case .interface(.destination, let output, false) = rule.matches[1], input == output,
                        let at = networks.firstIndex(where: { $0.bridge == input })
                    {
                        networks[at].icc = rule.action == .accept
                    }
                }
            }
            for rule in ruleset.table(family, "nat")?.chain("POSTROUTING")?.rules ?? [] where rule.action == .masquerade
            {
                if case .address(.source, let subnet, false) = rule.matches.first, !subnet.isHost,
                    case .interface(.destination, let bridge, true)? = rule.matches.dropFirst().first
                {
                    let at = index(bridge)
                    if family == .ip { networks[at].subnet = subnet } else { networks[at].subnet6 = subnet }
                    networks[at].masquerade = true
                }
            }
        }
    }

    /// Gateway modes (docker-28 and 29, IPv4): routed networks accept ICMP into the bridge,
    /// nat-unprotected ones accept everything from outside instead of dropping it.
    mutating func readGatewayModes() {
        for rule in filter?.chain(DockerChain.docker)?.rules ?? [] where rule.action == .accept {
            if rule.matches.count == 2, case .interface(.destination, let bridge, false) = rule.matches[0],
                rule.matches[1] == .icmp, let at = networks.firstIndex(where: { $0.bridge == bridge })
            {
                networks[at].gatewayMode = "routed"
            }
            if rule.matches.count == 2, case .interface(.source, let input, true) = rule.matches[0],
                case .interface(.destination, let bridge, false) = rule.matches[1], input == bridge,
                let at = networks.firstIndex(where: { $0.bridge == bridge })
            {
                networks[at].gatewayMode = "nat-unprotected"
            }
        }
    }

    /// Docker 20.10 jumps from ip6tables' FORWARD to DOCKER for networks with an IPv6
    /// subnet; one that does not masquerade names its subnet in no rule, and no container
    /// address of it did (`pairedContainers` takes the /64 of one). Its ip6tables rules name
    /// only its bridge: any IPv6 subnet gives them back. The first /64 of `fd00::/48`
    /// (`fd00:0:0:N::/64`) that overlaps no other network's is written, as an assumption.
    mutating func assumeIPv6SubnetsNotInTheRules(holding containers: [ImportedContainer]) {
        let withIPv6 = Set(
            (ruleset.table(.ip6, "filter")?.chain("FORWARD")?.rules ?? []).compactMap { rule -> String? in
                guard rule.action == .jump(DockerChain.docker),
                    case .interface(.destination, let bridge, false)? = rule.matches.first
                else { return nil }
                return bridge
            })
        for at in networks.indices where withIPv6.contains(networks[at].bridge) && networks[at].subnet6 == nil {
            let bridge = networks[at].bridge
            guard !networks[at].masquerade else {
                notImported.append("network on bridge \(bridge): its IPv6 subnet is not in the rules (no MASQUERADE)")
                continue
            }
            let taken = networks.compactMap(\.subnet6)
            guard
                let subnet = (0..<0x1_0000).lazy.map({
                    IPPrefix(address: IPAddress(ipv6: 0xFD00_0000_0000_0000 | UInt64($0), 0), length: 64)
                }).first(where: { candidate in !taken.contains { $0.overlaps(candidate) } })
            else { continue }
            networks[at].subnet6 = subnet
            assumed.append(
                "network on bridge \(bridge): it has IPv6 (ip6tables rules name its bridge) but its IPv6 subnet is in no rule (no MASQUERADE) and no IPv6 address of it is; \(subnet) is written, which gives the same rules: check it"
            )
        }
    }

    /// Whether the first `index + 1` containers, lowered with the host's networks and settings,
    /// give container `index` the DNAT rules (both families) the host has for it.
    func dnatReproduced(_ layout: any Layout, _ containers: [ImportedContainer], _ index: Int) -> Bool {
        var host = ImportedHost()
        host.settings = hostSettings(layout)
        var (scratchNotImported, scratchAssumed): ([String], [String]) = ([], [])
        let known: Set<String>
        (host.networks, known) = HostDeclarations.networkDeclarations(
            networks, containers: containers, notImported: &scratchNotImported, assumed: &scratchAssumed)
        (host.containers, _) = HostDeclarations.containerDeclarations(
            Array(containers[...index]), networks: networks, known: known, daemonChosenPorts: false,
            notImported: &scratchNotImported)
        let verification = Verification(source: ruleset, layout: layout, firewaller: firewaller)
        let target = containers[index]
        return verification.sameDNAT(host) { target.holds($0) }
    }

    /// Says, per container, which host ports are written as chosen by the daemon.
    mutating func noteDaemonChosenPorts(_ containers: [ImportedContainer]) {
        for container in containers {
            let chosen = container.publishes.filter(\.daemonChosen).map { publish in
                (publish.hostAddress.map { $0.family == .ipv6 ? "[\($0)]:" : "\($0):" } ?? "")
                    + "\(publish.hostPort ?? 0)/\(publish.transport.rawValue)"
            }
            guard !chosen.isEmpty else { continue }
            let (one, pinned) = (chosen.count == 1, container.publishes.contains(where: \.pinned))
            let handedOut =
                pinned
                ? "with the port\(one ? "" : "s") it chose (chosen PORT): from the containers the rules show, the allocator would hand out others (the daemon's counters had moved on, as containers since stopped or removed, or a network connected later, leave them)"
                : "which hands \(one ? "it" : "them") out again"
            assumed.append(
                "container \(container.name): host port\(one ? "" : "s") \(chosen.joined(separator: ", ")) \(one ? "is" : "are") written as chosen by the daemon, \(handedOut): written out, the policy would not give the host's rules back (Docker 20.10 sorts a daemon-chosen port as port 0 among the container's)"
            )
        }
    }

    /// Docker jumps from nat OUTPUT to DOCKER for loopback destinations too only when the
    /// userland proxy is off.
    var userlandProxyOff: Bool {
        nat?.chain("OUTPUT")?.rules.contains {
            $0.action == .jump(DockerChain.docker)
                && !$0.matches.contains { if case .address = $0 { true } else { false } }
        } ?? false
    }

    /// Containers: Docker 28 and 29 drop direct access to every endpoint in raw PREROUTING,
    /// in creation order; published ports come from the DNAT rules, in the order appended.
    /// IPv6 endpoints are the second address of a container Docker gave an IPv4 one: paired
    /// on their bridge with the container whose MAC address the IPv6 address is made from
    /// (`dockerMAC`), else with the one that publishes the same ports, else in order.
    /// Docker 20.10 allocates daemon-chosen ports per family on separate counters, so these
    /// may differ between the two families: a port mapped in one family only is bound to that
    /// family's every address (`0.0.0.0`, `[::]`). Each container keeps the order of its
    /// publishes in each family's rules (`order`), for `PublishOrder`.
    mutating func pairedContainers(_ layout: any Layout) -> [ImportedContainer] {
        var containers = self.containers(.ip, networks: networks, notImported: &notImported)
        for at in containers.indices { containers[at].order[.ip] = Array(containers[at].publishes.indices) }
        let perFamilyPorts = layout.isDocker2010
        func shared(_ p: [ImportedPublish]) -> [ImportedPublish] {
            p.filter { $0.hostAddress == nil }.map {
                ImportedPublish(
                    hostAddress: nil, hostPort: $0.hostPort, containerPort: $0.containerPort, transport: $0.transport)
            }
        }
        for v6 in self.containers(.ip6, networks: networks, notImported: &notImported) {
            let bridge =
                v6.bridge ?? networks.first(where: { $0.subnet6?.contains(v6.address) == true })?.bridge
            if let bridge, let at = networks.firstIndex(where: { $0.bridge == bridge }), networks[at].subnet6 == nil {
                // A network that masquerades names its IPv6 subnet in its IPv6 MASQUERADE: without
                // it, the rules are not Docker's. One that does not names it in no rule; the /64
                // holding the address (Docker's IPv6 subnets are /64s) gives the same rules.
                guard !networks[at].masquerade else {
                    notImported.append(
                        "container \(v6.address): the IPv6 subnet of its network (bridge \(bridge)) is not in the rules"
                    )
                    continue
                }
                let subnet = IPPrefix(address: v6.address, length: 64).network
                networks[at].subnet6 = subnet
                assumed.append(
                    "network on bridge \(bridge): its IPv6 subnet is in no rule (no MASQUERADE); \(subnet), holding its containers, is written, which gives the same rules: check it"
                )
            }
            let candidates = containers.indices.filter { at in
                let held = containers[at]
                let heldBridge =
                    held.bridge ?? networks.first(where: { $0.subnet?.contains(held.address) == true })?.bridge
                return held.address6 == nil && bridge != nil && heldBridge == bridge
            }
            guard
                let at = candidates.first(where: { Self.isMACDerived(v6.address, from: containers[$0].address) })
                    ?? candidates.first(where: { shared(containers[$0].publishes) == shared(v6.publishes) })
                    ?? candidates.first
            else {
                notImported.append(
                    "container \(v6.address): no IPv4 address of it is in the rules (Docker gives every endpoint one)")
                continue
            }
            containers[at].address6 = v6.address
            if containers[at].bridge == nil { containers[at].bridge = bridge }
            var order: [Int] = []
            for publish in v6.publishes {
                if publish.hostAddress == nil,
                    let same = containers[at].publishes.indices.first(where: { p in
                        containers[at].order[.ip]?.contains(p) == true && !order.contains(p)
                            && containers[at].publishes[p] == publish
                    })
                {
                    order.append(same)
                    continue
                }
                containers[at].publishes.append(
                    perFamilyPorts && publish.hostAddress == nil
                        ? ImportedPublish(
                            hostAddress: IPAddress(ipv6: 0, 0), hostPort: publish.hostPort,
                            containerPort: publish.containerPort, transport: publish.transport)
                        : publish)
                order.append(containers[at].publishes.count - 1)
            }
            containers[at].order[.ip6] = order
            if perFamilyPorts {
                for p in containers[at].publishes.indices where containers[at].publishes[p].hostAddress == nil {
                    let publish = containers[at].publishes[p]
                    if !order.contains(p) {
                        containers[at].publishes[p] = ImportedPublish(
                            hostAddress: IPAddress(ipv4: 0), hostPort: publish.hostPort,
                            containerPort: publish.containerPort, transport: publish.transport)
                    }
                }
            }
        }
        return containers
    }

    /// Whether an IPv6 address ends in the MAC address Docker gives an endpoint with IPv4 address
    /// `address4` (02:42 and the address's four bytes), as the bridge driver makes an endpoint's
    /// IPv6 address when IPAM gives none (docker0 with `--fixed-cidr-v6`): the endpoint is that
    /// container's, whatever the ports of each family say.
    static func isMACDerived(_ address6: IPAddress, from address4: IPAddress) -> Bool {
        address6.family == .ipv6 && address4.family == .ipv4
            && address6.low & 0xffff_ffff_ffff == 0x0242_0000_0000 | address4.low
    }

    /// Names: the default bridge is 'bridge', others are named after their bridge. Docker
    /// writes a routed network's subnet in no rule: any subnet holding its containers gives
    /// the same rules. The /24 of the first container is assumed.
    mutating func nameNetworks(holding containers: [ImportedContainer]) {
        for at in networks.indices { networks[at].name = HostDeclarations.networkName(networks[at].bridge) }
        for at in networks.indices where networks[at].subnet == nil && networks[at].gatewayMode == "routed" {
            let held = containers.filter { $0.bridge == networks[at].bridge }.map(\.address)
            guard let first = held.first else { continue }
            var length = 24
            while length > 0, !held.allSatisfy({ IPPrefix(address: first, length: length).contains($0) }) {
                length -= 1
            }
            let subnet = IPPrefix(address: first, length: length).network
            networks[at].subnet = subnet
            assumed.append(
                "network on bridge \(networks[at].bridge): a routed network's subnet is in no rule; \(subnet) (holding its containers) is written, which gives the same rules: check it"
            )
        }
    }

    /// The host settings the rules show (not those of the user chain's rules).
    func hostSettings(_ layout: any Layout) -> [ImportedHost.HostSetting] {
        var settings: [ImportedHost.HostSetting] = [.layout(layout.name)]
        if firewaller == .nftables { settings.append(.backend("nftables")) }
        if userlandProxyOff { settings.append(.userlandProxyOff) }
        if layout.isDocker2010 && ip6tables { settings.append(.ip6tablesOn) }
        let forwardPolicy = filter?.chain("FORWARD")?.base?.policy
        if layout.isDocker15 {
            if forwardPolicy == .drop { settings.append(.forwardPolicy("drop")) }
        } else if forwardPolicy == .accept {
            settings.append(.forwardPolicy("accept"))
        }
        return settings
    }

    /// The host as imported, and the user rules the language cannot say.
    func result(_ layout: any Layout, containers: [ImportedContainer], users: UserRuleImport) -> ImportResult {
        var notImported = notImported
        var assumed = assumed
        let userChain = layout.userChain
        var imported = ImportedHost()
        imported.header = [
            "Imported from a host managed by Docker (\(layout.name) layout\(firewaller == .nftables ? ", its nftables firewaller" : "")).",
            "Containers are named after their address (c-A-B-C-D) and networks after their bridge",
            "(net-BRIDGE; the default bridge is 'bridge'): a ruleset holds no names. Containers that",
            "left no rule are not listed ('unknown-containers drop' leaves one for each). Host ports",
            "are written as the host has them: a port the daemon chose cannot be told from one",
            "picked in its ephemeral range (32768-60999).",
        ]
        imported.settings = hostSettings(layout)
        if !users.externals.isEmpty { imported.settings.append(.external(users.externals)) }
        if let log = users.logDrops {
            imported.settings.append(.logDrops(rate: "\(log.rate.count)/\(log.rate.unit.rawValue)", prefix: log.prefix))
        }
        if users.countDrops { imported.settings.append(.countDropsOn) }
        if users.unknownContainersDrop { imported.settings.append(.unknownContainersDrop) }
        var daemonChosen = imported
        let written = HostDeclarations.declare(
            networks, containers, daemonChosenPorts: false, in: &imported, notImported: &notImported, assumed: &assumed)
        // Written out, a port the daemon chose may be programmed in another order than the
        // daemon's (Docker 20.10 sorts it as port 0, Docker 27 on after every fixed port): then
        // the daemon-chosen form is written where it gives the host's rules back.
        let verification = Verification(source: ruleset, layout: layout, firewaller: firewaller)
        let dnat = [(table: "nat", chain: DockerChain.docker)]
        let ephemeral = containers.contains { container in
            container.publishes.contains { $0.hostPort.map(HostDeclarations.ephemeral.contains) == true }
        }
        if ephemeral && !verification.same(imported, in: dnat) {
            var (scratchNotImported, scratchAssumed): ([String], [String]) = ([], [])
            _ = HostDeclarations.declare(
                networks, containers, daemonChosenPorts: true, in: &daemonChosen, notImported: &scratchNotImported,
                assumed: &scratchAssumed)
            if verification.same(daemonChosen, in: dnat) {
                imported.containers = daemonChosen.containers
                assumed.append(
                    "host ports in 32768-60999 are written as chosen by the daemon (publish PORT/PROTO): written out, they would be programmed in another order than the host's"
                )
            }
        }
        let statements = users.statements.filter { statement in
            statement.addresses.allSatisfy { written.contains($0) }
        }
        if !statements.isEmpty {
            imported.flowsHeading = "From the rules in \(userChain):"
            imported.flows = statements.map(\.flow)
        }
        if !statements.isEmpty || users.unknownContainersDrop
            || imported.containers.contains(where: { $0.publishes.contains { !$0.sources.isEmpty } })
        {
            let named = CommentNames.named(
                imported, comments: statements.map { $0.rules.first?.rule.comment?.text },
                rules: [TableFamily.ip, .ip6].flatMap { ruleset.table($0, "filter")?.chain(userChain)?.rules ?? [] })
            let userRules = [(table: "filter", chain: userChain), (table: "raw", chain: "PREROUTING")]
            if verification.same(named, in: userRules) { imported = named }
        }
        var rules = users.notImported
        for statement in users.statements where !statements.contains(where: { $0.flow == statement.flow }) {
            rules.append(contentsOf: statement.rules.map { (userChain, $0.family, $0.rule) })
        }
        for chain in Set(rules.map(\.chain)).sorted() {
            let table = chain == "PREROUTING" ? "raw " : ""
            notImported.append(
                "\(rules.filter { $0.chain == chain }.count) rule(s) in \(table)\(chain) the policy language cannot say (listed below)"
            )
        }
        imported.assumed = assumed
        imported.notImported = notImported
        return ImportResult(host: imported, notImportedRules: rules)
    }
}

extension DockerImporter {
    /// `! -s SUBNET -o BRIDGE -j DROP` (ip6tables: `! -s SUBNET ! -i BRIDGE -o BRIDGE -j DROP`):
    /// Docker's rule for an internal network.
    static func internalDrop(_ rule: Rule) -> (IPPrefix, String)? {
        guard rule.action == .drop, rule.matches.count == 2 || rule.matches.count == 3,
            case .address(.source, let subnet, true) = rule.matches[0],
            case .interface(.destination, let bridge, false) = rule.matches.last!
        else { return nil }
        if rule.matches.count == 3 && rule.matches[1] != .interface(.source, bridge, negated: true) { return nil }
        return (subnet, bridge)
    }
}

/// What the Docker eras' rules differ in, told by the layouts' own names.
extension Layout {
    var isDocker15: Bool { name == Docker15Layout.name }
    /// The classic layout of 18.06 to 27.x, in any of its eras.
    var isDocker2010: Bool { self is Docker2010Layout }
    /// Docker 28 and 29: DOCKER-FORWARD, gateway modes, and ip6tables chains of their own.
    var isModernDocker: Bool { name == Docker28Layout.name || name == Docker29Layout.name }
    /// The chain the policy's own rules are in.
    var userChain: String { isDocker15 ? Docker15Layout.userChain : DockerChain.user }
}
