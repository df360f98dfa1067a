import Foundation
import PortcullisPolicy

/// A container host built from network namespaces, for sending real packets through a compiled
/// ruleset: a "host" namespace with the policy's bridges and the uplink `eth0`, one namespace
/// per container attached by veth pairs with the policy's addresses, an "outside" namespace on
/// the other end of the uplink (the clients of published ports), and an "internet" namespace
/// behind it (the destinations of egress). Every namespace and every process is the harness's
/// own and is removed when it is released.
final class ContainerHost {
    static let uplinkHost = "198.19.0.1"
    static let uplinkOutside = "198.19.0.2"
    static let internetAddress = "198.19.1.2"
    static let probe = Repo.fixtures + "/traffic/probe.py"

    let host: TestNamespace
    let outside: TestNamespace
    let internet: TestNamespace
    private(set) var containers: [String: TestNamespace] = [:]
    private var servers: [Process] = []

    /// - Parameter outsideAddresses: extra addresses the outside namespace can send from.
    init(policy: Policy, outsideAddresses: [String] = []) throws {
        host = try TestNamespace()
        outside = try TestNamespace()
        internet = try TestNamespace()
        try must(host.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1"]))
        try must(
            run([
                "ip", "-n", host.name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
                outside.name,
            ]))
        try must(host.exec(["ip", "addr", "add", "\(Self.uplinkHost)/24", "dev", "eth0"]))
        try must(host.exec(["ip", "link", "set", "eth0", "up"]))
        try must(outside.exec(["ip", "addr", "add", "\(Self.uplinkOutside)/24", "dev", "eth0"]))
        for address in outsideAddresses {
            try must(outside.exec(["ip", "addr", "add", "\(address)/32", "dev", "eth0"]))
        }
        try must(outside.exec(["ip", "link", "set", "eth0", "up"]))
        try must(outside.exec(["ip", "route", "add", "default", "via", Self.uplinkHost]))
        try must(
            run([
                "ip", "-n", outside.name, "link", "add", "wan", "type", "veth", "peer", "name", "eth0", "netns",
                internet.name,
            ]))
        try must(outside.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1"]))
        try must(outside.exec(["ip", "addr", "add", "198.19.1.1/24", "dev", "wan"]))
        try must(outside.exec(["ip", "link", "set", "wan", "up"]))
        try must(internet.exec(["ip", "addr", "add", "\(Self.internetAddress)/24", "dev", "eth0"]))
        try must(internet.exec(["ip", "link", "set", "eth0", "up"]))
        try must(internet.exec(["ip", "route", "add", "default", "via", "198.19.1.1"]))
        try must(host.exec(["ip", "route", "add", "default", "via", Self.uplinkOutside]))
        for network in policy.networks {
            guard let subnet = network.subnet4, let gateway = network.gateway4 else { continue }
            try must(host.exec(["ip", "link", "add", network.bridge, "type", "bridge"]))
            try must(host.exec(["ip", "addr", "add", "\(gateway)/\(subnet.length)", "dev", network.bridge]))
            try must(host.exec(["ip", "link", "set", network.bridge, "up"]))
        }
        var vethIndex = 0
        for container in policy.containers {
            let namespace = try TestNamespace()
            containers[container.name] = namespace
            for (index, attachment) in container.attachments.enumerated() {
                guard let network = policy.network(attachment.network), let address = attachment.address4,
                    let subnet = network.subnet4
                else { continue }
                vethIndex += 1
                let hostSide = "vh\(vethIndex)"
                let inside = "eth\(index)"
                try must(
                    run([
                        "ip", "-n", host.name, "link", "add", hostSide, "type", "veth", "peer", "name", inside, "netns",
                        namespace.name,
                    ]))
                try must(host.exec(["ip", "link", "set", hostSide, "master", network.bridge, "up"]))
                if !policy.host.userlandProxy {
                    // As Docker does without the proxy: a container may reach itself through
                    // the host's published port, which sends the packet back out of its own port.
                    try must(host.exec(["ip", "link", "set", hostSide, "type", "bridge_slave", "hairpin", "on"]))
                }
                try must(namespace.exec(["ip", "addr", "add", "\(address)/\(subnet.length)", "dev", inside]))
                try must(namespace.exec(["ip", "link", "set", inside, "up"]))
                // Docker routes a container through the endpoint it picks as gateway (the first
                // non-internal network by name); a container only on internal networks has none.
                if container.gatewayAttachment(network: policy.network)?.0 == attachment, let gateway = network.gateway4
                {
                    try must(namespace.exec(["ip", "route", "add", "default", "via", gateway.description]))
                }
            }
        }
    }

    /// The servers are ours, ended by PID. SIGKILL, because a child started from a thread that
    /// blocks signals (as libdispatch's threads do) inherits the mask and ignores SIGTERM.
    deinit {
        for server in servers where server.isRunning {
            kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
        }
    }

    /// Starts a server answering on `ports` (`80`, `53/udp`) inside a namespace and waits until
    /// it listens.
    func serve(in namespace: TestNamespace, ports: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", namespace.name, "/usr/bin/python3", Self.probe, "serve"] + ports
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        servers.append(process)
        let ready = output.fileHandleForReading.availableData
        guard String(decoding: ready, as: UTF8.self).hasPrefix("ready") else {
            throw NamespaceError(message: "probe server in \(namespace.name) did not start")
        }
    }

    /// Whether a connection (TCP, or a UDP exchange for `53/udp`) from a namespace, optionally
    /// from a given source address, to `address:port` is answered.
    func connects(from namespace: TestNamespace, to address: String, port: String, source: String? = nil) -> Bool {
        namespace.exec(["/usr/bin/python3", Self.probe, "connect", address, port] + (source.map { [$0] } ?? [])).status
            == 0
    }

    private func must(_ result: CommandResult) throws {
        guard result.status == 0 else { throw NamespaceError(message: "setup failed: \(result.stderr)") }
    }
}
