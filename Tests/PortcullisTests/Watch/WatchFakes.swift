import Foundation
import Logging
import PortcullisDocker
import PortcullisNet
import PortcullisWatch

/// A daemon's objects as a test sets them: what an inspect would answer now.
final class FakeInspector: EngineInspector, @unchecked Sendable {
    private let lock = NSLock()
    private var containers: [String: Inventory.Container] = [:]
    private var networks: [String: Inventory.Network] = [:]
    /// Makes every read fail (the daemon went away mid-event).
    var failing = false
    /// What the daemon's `/info` says of live-restore.
    var liveRestore: Bool?

    func set(_ container: Inventory.Container?, id: String) { lock.withLock { containers[id] = container } }
    func set(_ network: Inventory.Network?, id: String) { lock.withLock { networks[id] = network } }

    func container(id: String) async throws -> Inventory.Container? {
        try lock.withLock {
            if failing { throw InventoryError("the fake daemon is gone") }
            return containers[id]
        }
    }

    func network(id: String) async throws -> Inventory.Network? {
        try lock.withLock {
            if failing { throw InventoryError("the fake daemon is gone") }
            return networks[id]
        }
    }

    /// Everything running now, as a full read would give it.
    func inventory() -> Inventory {
        lock.withLock {
            Inventory.assembled(
                source: "docker",
                daemon: Inventory.Daemon(version: "20.10.24", apiVersion: "1.41", liveRestore: liveRestore),
                networks: Array(networks.values), containers: Array(containers.values))
        }
    }
}

enum Fake {
    static func network(_ name: String, id: String, octet: Int, created: String, isDefault: Bool = false)
        -> Inventory.Network
    {
        var network = Inventory.Network(name: name, id: id, bridge: isDefault ? "docker0" : "br-\(id)")
        network.isDefault = isDefault
        network.created = created
        if case .success(let prefix) = IPPrefix.parse("198.18.\(octet).0/24") {
            network.subnets = [Inventory.Subnet(prefix: prefix)]
        }
        return network
    }

    static func container(_ name: String, id: String, started: String, on networks: [(String, Int, Int)])
        -> Inventory.Container
    {
        var container = Inventory.Container(name: name, id: id)
        container.started = started
        container.endpoints = networks.map { network, octet, host in
            guard case .success(let address) = IPPrefix.parse(Substring("198.18.\(octet).\(host)/24")) else {
                return Inventory.Endpoint(network: network, networkID: network)
            }
            return Inventory.Endpoint(network: network, networkID: network, ipv4: address)
        }
        return container
    }
}

/// A daemon for the watcher: connections whose event streams the test feeds and ends.
final class FakeDaemon: WatchedDaemon, @unchecked Sendable {
    let inspector = FakeInspector()
    let origin = "the fake daemon"
    private let lock = NSLock()
    private var streams: [AsyncThrowingStream<EngineEvent, any Error>.Continuation] = []
    private(set) var attempts = 0
    /// Connections refused before one succeeds.
    var refusals = 0

    func connect() async throws -> DaemonConnection {
        let (stream, continuation) = AsyncThrowingStream<EngineEvent, any Error>.makeStream()
        try lock.withLock {
            attempts += 1
            if refusals > 0 {
                refusals -= 1
                throw InventoryError("no Docker daemon at the fake socket")
            }
            streams.append(continuation)
        }
        return DaemonConnection(
            events: stream, inventory: inspector.inventory(), inspector: inspector, origin: origin, close: {})
    }

    /// An event on the current stream.
    func send(_ event: EngineEvent) { _ = lock.withLock { streams.last }?.yield(event) }

    /// Ends the current stream, as a daemon that stops does.
    func endStream() { lock.withLock { streams.last }?.finish() }
}

/// Records log lines, to check what the watcher says.
final class LogRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var recorded: [String] = []

    var lines: [String] { lock.withLock { recorded } }
    func append(_ line: String) { lock.withLock { recorded.append(line) } }

    var logger: Logger {
        var logger = Logger(label: "test.watch") { _ in RecordingHandler(recorder: self) }
        logger.logLevel = .debug
        return logger
    }

    struct RecordingHandler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) { recorder.append("\(event.level): \(event.message)") }
    }
}

/// Polls until `condition` holds or `seconds` pass; whether it held.
func eventually(within seconds: Double = 10, _ condition: () throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        // Sleeping, not blocking: the watcher under test runs on the same few threads.
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try condition()
}
