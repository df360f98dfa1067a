import Foundation
import PortcullisNet
import PortcullisPolicy
import Synchronization

/// A policy's host built from network namespaces, to send real packets through its rules: a
/// host namespace with the policy's bridges and an uplink `eth0`, a namespace per container
/// attached by a veth with its addresses and Docker's 02:42 MAC, an outside namespace at the
/// uplink's other end (a router), and an internet namespace behind it that holds every remote
/// address: those clients of published ports send from and those egress goes to (one address
/// may be both). Every namespace and process
/// is this host's own, removed by `remove()` (and when it is released); the namespace the
/// command runs in is never changed.
public final class ThrowawayHost {
    /// The uplink's and the internet's addresses, from the benchmarking range (RFC 2544).
    public static let uplinkHost = "198.19.254.1"
    public static let uplinkOutside = "198.19.254.2"
    static let wanOutside = "198.19.253.1"
    static let wanInternet = "198.19.253.2"

    public let host: String
    public let outside: String
    public let internet: String
    /// The namespace of each container, by name.
    public private(set) var containers: [String: String] = [:]
    /// The host's own IPv4 addresses (see `localAddresses(of:)`).
    public let localAddresses: Set<String>

    /// The uplink's address, the bridges' gateways, and the addresses the policy binds
    /// publishes to (a network's host binding, a publish's host address), which a real host has
    /// configured.
    public static func localAddresses(of policy: Policy) -> Set<String> {
        let bound =
            policy.networks.compactMap(\.hostBinding)
            + policy.containers.flatMap { $0.publishes.compactMap(\.hostAddress) }
        return Set(
            ([uplinkHost] + policy.networks.compactMap(\.gateway4).map(\.description)
                + bound.filter { $0.family == .ipv4 && !$0.isUnspecified && !$0.description.hasPrefix("127.") }.map(
                    \.description)))
    }
    private var created: [String] = []
    private var servers: [Process] = []
    private static let counter = Mutex(0)

    /// - Parameter remoteAddresses: addresses beyond the uplink: clients send from them, and
    ///   servers answer on them, in the internet namespace.
    public init(policy: Policy, remoteAddresses: [String] = []) throws {
        localAddresses = Self.localAddresses(of: policy)
        let number = Self.counter.withLock {
            $0 += 1
            return $0
        }
        let prefix = "pc-kernel-\(getpid())-\(number)"
        host = prefix + "-host"
        outside = prefix + "-out"
        internet = prefix + "-net"
        do {
            for name in [host, outside, internet] { try create(name) }
            try build(policy, prefix: prefix, remoteAddresses: remoteAddresses)
        } catch {
            remove()
            throw error
        }
    }

    deinit { remove() }

    private func create(_ name: String) throws {
        try must(["ip", "netns", "add", name])
        created.append(name)
        try must(["ip", "-n", name, "link", "set", "lo", "up"])
    }

    private func build(_ policy: Policy, prefix: String, remoteAddresses: [String]) throws {
        try inside(host, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        try must(["ip", "-n", host, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", outside])
        try inside(host, ["ip", "addr", "add", "\(Self.uplinkHost)/24", "dev", "eth0"])
        try inside(host, ["ip", "link", "set", "eth0", "up"])
        try inside(host, ["ip", "route", "add", "default", "via", Self.uplinkOutside])
        let gateways = Set(policy.networks.compactMap(\.gateway4).map(\.description))
        for address in localAddresses.subtracting(gateways + [Self.uplinkHost]).sorted() {
            try inside(host, ["ip", "addr", "add", "\(address)/32", "dev", "eth0"])
        }
        try inside(outside, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        try inside(outside, ["ip", "addr", "add", "\(Self.uplinkOutside)/24", "dev", "eth0"])
        try inside(outside, ["ip", "link", "set", "eth0", "up"])
        try inside(outside, ["ip", "route", "add", "default", "via", Self.uplinkHost])
        try must(["ip", "-n", outside, "link", "add", "wan", "type", "veth", "peer", "name", "eth0", "netns", internet])
        try inside(outside, ["ip", "addr", "add", "\(Self.wanOutside)/24", "dev", "wan"])
        try inside(outside, ["ip", "link", "set", "wan", "up"])
        try inside(internet, ["ip", "addr", "add", "\(Self.wanInternet)/24", "dev", "eth0"])
        for address in Set(remoteAddresses) {
            try inside(internet, ["ip", "addr", "add", "\(address)/32", "dev", "eth0"])
            try inside(outside, ["ip", "route", "replace", "\(address)/32", "via", Self.wanInternet])
        }
        try inside(internet, ["ip", "link", "set", "eth0", "up"])
        try inside(internet, ["ip", "route", "add", "default", "via", Self.wanOutside])
        for network in policy.networks {
            guard let subnet = network.subnet4, let gateway = network.gateway4 else { continue }
            try inside(host, ["ip", "link", "add", network.bridge, "type", "bridge"])
            try inside(host, ["ip", "addr", "add", "\(gateway)/\(subnet.length)", "dev", network.bridge])
            try inside(host, ["ip", "link", "set", network.bridge, "up"])
        }
        var veth = 0
        for (index, container) in policy.containers.enumerated() {
            let namespace = "\(prefix)-c\(index)"
            try create(namespace)
            containers[container.name] = namespace
            for (position, attachment) in container.attachments.enumerated() {
                guard let network = policy.network(attachment.network), let address = attachment.address4,
                    let subnet = network.subnet4
                else { continue }
                veth += 1
                let hostSide = "vh\(veth)"
                let inner = "eth\(position)"
                try must([
                    "ip", "-n", host, "link", "add", hostSide, "type", "veth", "peer", "name", inner, "netns",
                    namespace,
                ])
                try inside(host, ["ip", "link", "set", hostSide, "master", network.bridge, "up"])
                if !policy.host.userlandProxy {
                    // As Docker without the proxy: a container reaches itself through a published port.
                    try inside(host, ["ip", "link", "set", hostSide, "type", "bridge_slave", "hairpin", "on"])
                }
                try inside(namespace, ["ip", "link", "set", inner, "address", attachment.mac ?? Self.mac(address)])
                try inside(namespace, ["ip", "addr", "add", "\(address)/\(subnet.length)", "dev", inner])
                try inside(namespace, ["ip", "link", "set", inner, "up"])
                // Docker routes through the endpoint it picks as gateway; internal-only: none.
                if container.gatewayAttachment(network: policy.network)?.0 == attachment, let gateway = network.gateway4
                {
                    try inside(namespace, ["ip", "route", "add", "default", "via", gateway.description])
                }
            }
        }
    }

    /// Docker's MAC for an IPv4 address: 02:42 and the address's four bytes.
    static func mac(_ address: IPAddress) -> String {
        "02:42:"
            + address.description.split(separator: ".").map { String(format: "%02x", Int($0) ?? 0) }
            .joined(separator: ":")
    }

    /// Runs a command in one of this host's namespaces.
    public func run(in namespace: String, _ arguments: [String]) -> (status: Int32, output: String) {
        Self.run(["ip", "netns", "exec", namespace] + arguments)
    }

    /// Starts the probe server (`executable probe serve ...`) in a namespace; waits until it listens.
    public func serve(in namespace: String, ports: [Probe.Port], executable: String) throws {
        guard !ports.isEmpty else { return }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments =
            ["ip", "netns", "exec", namespace, executable, "probe", "serve"] + Set(ports).map(\.description)
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        servers.append(process)
        let ready = output.fileHandleForReading.availableData
        guard String(decoding: ready, as: UTF8.self).hasPrefix("ready") else {
            throw ProbeError("the probe server in \(namespace) did not start")
        }
    }

    /// Whether a connection from a namespace (from `source` if given) to `address:port` is answered.
    public func connects(
        from namespace: String, to address: String, port: Probe.Port, source: String?, executable: String
    ) -> Bool {
        run(in: namespace, [executable, "probe", "connect", address, port.description] + (source.map { [$0] } ?? []))
            .status == 0
    }

    /// Ends the servers (by PID) and deletes the namespaces; safe to call twice.
    public func remove() {
        for server in servers where server.isRunning {
            kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
        }
        servers = []
        for name in created.reversed() { _ = Self.run(["ip", "netns", "delete", name]) }
        created = []
    }

    private func inside(_ namespace: String, _ arguments: [String]) throws {
        try must(["ip", "netns", "exec", namespace] + arguments)
    }

    private func must(_ arguments: [String]) throws {
        let (status, output) = Self.run(arguments)
        guard status == 0 else { throw ProbeError("\(arguments.joined(separator: " ")): \(output)") }
    }

    static func run(_ arguments: [String]) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch { return (127, "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
