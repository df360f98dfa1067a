import PortcullisNet
import PortcullisSyntax

/// `container` blocks: attachments, exposed ports and the publishes they expand to.
extension Checker {
    mutating func checkContainer(_ block: Block, networksDeclaredBefore: Int) {
        guard let name = block.name else { return }  // reported with the names
        var container = Container(
            name: name.value, attachments: [], publishes: [],
            origin: Origin("container \(name.value)", at: block.keyword.range.start))
        let publishAll = containerSettings(block, into: &container, networksDeclaredBefore: networksDeclaredBefore)
        if container.attachments.isEmpty && !block.settings.contains(where: { $0.keyword.value == "attach" }) {
            error(
                "container '\(name.value)' is not attached to any network", at: name.range,
                hint: "add a line such as 'attach bridge 172.17.0.2'")
        }
        if let publishAll { publishExposedPorts(publishAll, of: &container) }
        checkIPv6HostAddresses(of: container)
        warnAboutPublishesOnInternalOnly(container, block)
        containerPositions[container.name] = containerPositions[container.name] ?? containers.count
        containers.append(container)
    }

    /// Attachments, exposed ports and publishes, into the container; the `publish-all` line.
    private mutating func containerSettings(
        _ block: Block, into container: inout Container, networksDeclaredBefore: Int
    ) -> Setting? {
        var publishAll: Setting?
        for setting in block.settings {
            switch setting.keyword.value {
            case "attach":
                checkAttach(setting, into: &container, visibleNetworks: networksDeclaredBefore)
            case "expose":
                for value in setting.values {
                    guard let spec = portSpec(value) else { continue }
                    container.exposedPorts.append(spec)
                    container.firstNamedPort =
                        container.firstNamedPort ?? PortSpec(PortRange(spec.ports.first), spec.transport)
                }
            case "publish-all":
                if publishAll != nil { error("'publish-all' given twice", at: setting.keyword.range) }
                publishAll = setting
            case "publish":
                guard let publish = checkPublish(setting, container: container) else { continue }
                container.publishes.append(publish)
                container.firstNamedPort =
                    container.firstNamedPort ?? PortSpec(PortRange(publish.containerPorts.first), publish.transport)
            default: break
            }
        }
        return publishAll
    }

    /// `publish-all`: Docker publishes each port of an exposed range on a host port of its own,
    /// chosen by the daemon, unless the port already has a binding.
    private mutating func publishExposedPorts(_ publishAll: Setting, of container: inout Container) {
        if container.exposedPorts.isEmpty {
            error(
                "'publish-all' needs exposed ports", at: publishAll.keyword.range,
                hint: "list them with 'expose 80/tcp, 53/udp' (what the image's EXPOSE says)")
        }
        let (sources, text) = allowList(publishAll.clause("from"))
        for spec in container.exposedPorts {
            for port in spec.ports.first...spec.ports.last
            where !container.publishes.contains(where: {
                $0.transport == spec.transport && $0.containerPorts.contains(port)
            }) {
                container.publishes.append(
                    Publish(
                        hostAddress: nil, hostPorts: PortRange(0), hostPortIsEphemeral: true,
                        containerPorts: PortRange(port), transport: spec.transport,
                        allowedSources: sources, allowedSourcesText: text,
                        origin: Origin(
                            "publish-all \(port)/\(spec.transport.rawValue) (container \(container.name))",
                            at: publishAll.keyword.range.start),
                        fromPublishAll: true))
            }
        }
    }

    private mutating func checkIPv6HostAddresses(of container: Container) {
        guard container.attachments.allSatisfy({ $0.address6 == nil }) else { return }
        for publish in container.publishes {
            guard let hostAddress = publish.hostAddress, hostAddress.family == .ipv6 else { continue }
            error(
                "host address \(hostAddress) is IPv6 but container '\(container.name)' has no IPv6 address",
                at: SourceRange(start: publish.origin.location, length: 7),
                hint: "attach it with an IPv6 address too, or publish on an IPv4 host address")
        }
    }

    /// Docker accepts `docker run --network INTERNAL -p ...` and maps nothing.
    private mutating func warnAboutPublishesOnInternalOnly(_ container: Container, _ block: Block) {
        guard !container.attachments.isEmpty,
            container.attachments.allSatisfy({ network($0.network)?.internal == true })
        else { return }
        for setting in block.settings where ["publish", "publish-all"].contains(setting.keyword.value) {
            warning(
                "'\(setting.keyword.value)' has no effect: container '\(container.name)' is attached only to internal networks",
                at: setting.keyword.range,
                hint:
                    "Docker maps no ports for a container without a non-internal network; attach it to one, or remove the publish"
            )
        }
    }

    // MARK: - attach

    /// `attach NETWORK ADDRESS [mac MAC]`; `visibleNetworks`: how many networks were declared
    /// above the container.
    private mutating func checkAttach(_ setting: Setting, into container: inout Container, visibleNetworks: Int) {
        if setting.values.count == 1 {
            error(
                "no address for '\(container.name)' on '\(setting.values[0].value)': only an inventory of the host can give it",
                at: setting.values[0].range,
                hint:
                    "compile with --inventory docker (the running daemon) or --inventory FILE (a snapshot), or write the address: attach \(setting.values[0].value) ADDRESS"
            )
            return
        }
        guard let values = values(of: setting, count: 2),
            let network = attachedNetwork(values[0], of: container, visibleNetworks: visibleNetworks),
            let address = address(values[1], what: "container address"),
            checkAttachedAddress(address, on: network, at: values[1].range)
        else { return }
        let mac = mac(setting.clause("mac"))
        let index = container.attachments.firstIndex { $0.network == network.name }
        if let index {
            let existing =
                address.family == .ipv4 ? container.attachments[index].address4 : container.attachments[index].address6
            if existing != nil {
                error(
                    "container '\(container.name)' already has an \(address.family == .ipv4 ? "IPv4" : "IPv6") address on '\(network.name)'",
                    at: values[1].range, hint: "a container has one address per family on each network")
                return
            }
        }
        if let owner = usedAddresses[address] {
            error(
                "address \(address) is already used by container '\(owner)'", at: values[1].range,
                hint: "two containers cannot share an address")
            return
        }
        usedAddresses[address] = container.name
        if let index {
            if address.family == .ipv4 {
                container.attachments[index].address4 = address
            } else {
                container.attachments[index].address6 = address
            }
            if mac != nil { container.attachments[index].mac = mac }
            return
        }
        if address.family == .ipv6 {
            error(
                "attach '\(network.name)' with an IPv4 address first", at: values[1].range,
                hint: "Docker gives every bridge endpoint an IPv4 address; add the IPv6 one on a second attach line")
            return
        }
        container.attachments.append(
            Attachment(network: network.name, address4: address, address6: nil, mac: mac))
    }

    /// The network an `attach` names, if it was declared above the container.
    private mutating func attachedNetwork(_ name: Located<String>, of container: Container, visibleNetworks: Int)
        -> Network?
    {
        if let position = networkPositions[name.value], position < visibleNetworks { return networks[position] }
        let declaredBefore = declarationOrder.prefix { $0 != .startContainer(container.name) }
        if declaredBefore.contains(.createNetwork(name.value)) {
            return nil  // the network has errors of its own, already reported
        }
        if let later = network(name.value) {
            error(
                "network '\(name.value)' is declared after container '\(container.name)'", at: name.range,
                hint: "move 'network \(later.name)' above the container: networks are created in file order")
        } else if let kind = endpointKinds[name.value]?.kind {
            error("'\(name.value)' is a \(kind), not a network", at: name.range)
        } else {
            unknownName(name, expected: "network", among: .networks)
        }
        return nil
    }

    /// An address a container can take on the network: in its subnet, and neither its gateway,
    /// nor its network or broadcast address.
    private mutating func checkAttachedAddress(_ address: IPAddress, on network: Network, at range: SourceRange)
        -> Bool
    {
        guard let subnet = address.family == .ipv4 ? network.subnet4 : network.subnet6 else {
            error(
                "\(address) is IPv6 but network '\(network.name)' has no IPv6 subnet", at: range,
                hint: "add 'subnet fd00:.../64' to the network")
            return false
        }
        if !subnet.contains(address) {
            error("address \(address) is outside the subnet \(subnet) of network '\(network.name)'", at: range)
            return false
        }
        if address == (address.family == .ipv4 ? network.gateway4 : network.gateway6) {
            error("address \(address) is the gateway of network '\(network.name)'", at: range)
            return false
        }
        if address == subnet.first || (address.family == .ipv4 && address == subnet.last) {
            error(
                "address \(address) is the \(address == subnet.first ? "network" : "broadcast") address of \(subnet)",
                at: range)
            return false
        }
        return true
    }

    /// An attachment's `mac` clause, lowercased.
    private mutating func mac(_ clause: Clause?) -> String? {
        guard let written = clause?.values.first else { return nil }
        guard Checker.isMAC(written.value) else {
            error(
                "invalid MAC address '\(written.value)'", at: written.range,
                hint: "write six hex pairs, e.g. 02:42:ac:11:00:02")
            return nil
        }
        return written.value.lowercased()
    }

    static func isMAC(_ text: String) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count == 6 && parts.allSatisfy { $0.count == 2 && $0.allSatisfy { $0.isHexDigit && $0.isASCII } }
    }
}
