import PortcullisNet
import PortcullisSyntax

/// `publish` settings and the `from` allow-lists of publishes.
extension Checker {
    /// Resolves a `from` clause: address-set names and literal prefixes.
    mutating func allowList(_ clause: Clause?) -> ([IPPrefix], String) {
        guard let clause else { return ([], "") }
        var prefixes: [IPPrefix] = []
        for value in clause.values {
            if let set = addressSets[value.value] {
                prefixes += set
            } else if value.value.first?.isLetter == true && !value.value.utf8.contains(UInt8(ascii: ":")) {
                unknownName(value, expected: "address set", among: .addressSets)
            } else if let p = prefix(value, what: "source address") {
                prefixes.append(p.isHost ? p : p.network)
            }
        }
        return (prefixes, clause.values.map(\.value).joined(separator: ", "))
    }

    /// `[HOST-IP:]PORTS -> PORTS[/PROTO]`, or with the host port chosen by the daemon,
    /// `PORT[/PROTO]` or `HOST-IP -> PORT[/PROTO]` (Docker's `-p HOST-IP::PORT`), optionally
    /// `chosen PORT`, the port it chose.
    mutating func checkPublish(_ setting: Setting, container: Container) -> Publish? {
        guard let left = value(of: setting) else { return nil }
        let chosen = setting.clause("chosen")?.values.first
        let (sources, sourcesText) = allowList(setting.clause("from"))
        let target = setting.clause("->")?.values.first
        let hostAddressAlone = target.flatMap { _ in Self.bareHostAddress(left.value) }
        let origin = { (written: String) in
            Origin("publish \(written) (container \(container.name))", at: setting.keyword.range.start)
        }
        guard let target, hostAddressAlone == nil else {
            let written = target ?? left
            guard let spec = portSpec(written) else { return nil }
            if !spec.ports.isSingle {
                error(
                    "publishing a container port range needs host ports", at: written.range,
                    hint: "write publish \(spec.ports) -> \(written.value) to use the same host ports")
                return nil
            }
            var chosenPort: UInt16?
            if let chosen {
                guard let ports = portRange(Substring(chosen.value), at: chosen.range) else { return nil }
                guard ports.isSingle else {
                    error("the daemon chooses one host port, not '\(chosen.value)'", at: chosen.range)
                    return nil
                }
                chosenPort = ports.first
            }
            return Publish(
                hostAddress: hostAddressAlone, hostPorts: PortRange(chosenPort ?? 0), hostPortIsEphemeral: true,
                containerPorts: spec.ports, transport: spec.transport,
                allowedSources: sources, allowedSourcesText: sourcesText,
                origin: origin("\(target == nil ? "" : "\(left.value) -> ")\(written.value)"), chosenPort: chosenPort)
        }
        if let chosen {
            error(
                "'chosen' names the port the daemon chose, and this publish names its host port",
                at: chosen.range,
                hint: "for a port the daemon chose, write publish [ADDRESS ->] PORT/PROTO chosen HOST-PORT")
            return nil
        }
        guard let (hostAddress, portsText, portsRange) = hostAddressAndPorts(left) else { return nil }
        if portsText.utf8.contains(UInt8(ascii: "/")) {
            error(
                "the protocol goes after the container port", at: portsRange,
                hint:
                    "write publish \(portsText.split(separator: "/")[0]) -> PORT/\(portsText.split(separator: "/").last ?? "tcp")"
            )
            return nil
        }
        guard let hostPorts = portRange(portsText, at: portsRange), let spec = portSpec(target) else { return nil }
        if hostPorts.count != spec.ports.count {
            error(
                "range length mismatch: \(hostPorts.count) host port\(hostPorts.count == 1 ? "" : "s") for \(spec.ports.count) container port\(spec.ports.count == 1 ? "" : "s")",
                at: target.range, hint: "host and container ranges must have the same length")
            return nil
        }
        return Publish(
            hostAddress: hostAddress, hostPorts: hostPorts, hostPortIsEphemeral: false, containerPorts: spec.ports,
            transport: spec.transport, allowedSources: sources, allowedSourcesText: sourcesText,
            origin: origin("\(left.value) -> \(target.value)"))
    }

    /// `[HOST-IP:]PORTS`: the host address if one is written, the ports' text and where it stands.
    private mutating func hostAddressAndPorts(_ left: Located<String>) -> (IPAddress?, Substring, SourceRange)? {
        var hostAddress: IPAddress?
        var portsText = Substring(left.value)
        var portsColumnOffset = 0
        if let colon = left.value.lastIndex(of: ":") {
            var addressText = left.value[..<colon]
            if addressText.hasPrefix("[") && addressText.hasSuffix("]") {
                addressText = addressText.dropFirst().dropLast()
            } else if addressText.utf8.contains(UInt8(ascii: ":")) {
                error(
                    "IPv6 host address must be in brackets", at: left.range,
                    hint: "write publish [\(addressText)]:\(left.value[left.value.index(after: colon)...]) -> ...")
                return nil
            }
            guard let address = IPAddress(addressText) else {
                error(
                    "invalid host address '\(addressText)'", at: left.range, hint: "write 127.0.0.1:8080 or [::1]:8080")
                return nil
            }
            hostAddress = address
            portsText = left.value[left.value.index(after: colon)...]
            portsColumnOffset = left.value.distance(from: left.value.startIndex, to: colon) + 1
        }
        let portsRange = SourceRange(
            start: SourceLocation(
                file: left.range.start.file, line: left.range.start.line,
                column: left.range.start.column + portsColumnOffset),
            length: portsText.count)
        return (hostAddress, portsText, portsRange)
    }

    /// A host address written without a port: `127.0.0.1` or `[::1]`.
    static func bareHostAddress(_ text: String) -> IPAddress? {
        if text.hasPrefix("[") && text.hasSuffix("]") {
            return IPAddress(text.dropFirst().dropLast()).flatMap { $0.family == .ipv6 ? $0 : nil }
        }
        // Unbracketed, only IPv4: `ADDRESS:PORT` is no address (and parsing it as IPv6 costs).
        guard !text.utf8.contains(UInt8(ascii: ":")) else { return nil }
        return IPAddress(Substring(text))
    }
}
