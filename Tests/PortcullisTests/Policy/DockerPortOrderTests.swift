import PortcullisNet
import PortcullisPolicy
import PortcullisSyntax
import Testing

/// Docker 20.10's port-binding order, worked out by hand from go-connections' `SortPortMap`
/// and Go 1.19's insertion sort, and the checker's use of it.
@Suite struct DockerPortOrderTests {
    typealias Port = DockerPortOrder.Port

    /// `sortPortMap` on tcp bindings given as (host port, container port) in `-p` order, the
    /// map order starting at `start`: the host ports in programming order.
    static func order(_ bindings: [(UInt16, UInt16)], exposed: [UInt16] = [], start: UInt16) -> [String] {
        var byPort: [Port: [(hostPort: UInt16, binding: String)]] = [:]
        for (host, container) in bindings {
            byPort[Port(container, .tcp), default: []].append((host, "\(host)->\(container)"))
        }
        let ports = Set(byPort.keys).union(exposed.map { Port($0, .tcp) })
        let mapOrder = DockerPortOrder.rotations(of: Array(ports)).first { $0.first == Port(start, .tcp) }!
        return DockerPortOrder.sortPortMap(ports: mapOrder, bindings: byPort).flatMap(\.bindings)
    }

    @Test func twoTcpBindingsOfOnePortComeOutInReverseOrder() {
        // Less is true both ways for two tcp bindings of one port: each new one moves to the front.
        #expect(Self.order([(9090, 80), (8080, 80)], start: 80) == ["8080->80", "9090->80"])
        #expect(Self.order([(8080, 80), (9090, 80)], start: 80) == ["9090->80", "8080->80"])
        #expect(Self.order([(7000, 80), (9000, 80), (8000, 80)], start: 80) == ["8000->80", "9000->80", "7000->80"])
    }

    @Test func onePortsBindingsStayTogetherAndTheMapOrderDecides() {
        let bindings: [(UInt16, UInt16)] = [(9000, 80), (8500, 443), (8000, 80)]
        // Map order 80/tcp, 443/tcp: 443 ends up first, though 9000 is the highest host port.
        #expect(Self.order(bindings, start: 80) == ["8500->443", "8000->80", "9000->80"])
        // Map order 443/tcp, 80/tcp (the sorted keys): 80's bindings first, in -p order.
        #expect(Self.order(bindings, start: 443) == ["9000->80", "8000->80", "8500->443"])
    }

    @Test func hostAndContainerPortOrderDisagreeing() {
        // Less(7070->90, 9090->70) and Less(9090->70, 7070->90) are both true.
        #expect(Self.order([(7070, 90), (9090, 70)], start: 70) == ["7070->90", "9090->70"])
        #expect(Self.order([(7070, 90), (9090, 70)], start: 90) == ["9090->70", "7070->90"])
    }

    @Test func exposedPortsWithoutBindingsTakePartInTheSort() {
        // Host port 0 is a daemon-chosen binding. The exposed 80/tcp, first in the map order,
        // stops the daemon-chosen 70 from moving to the front.
        let bindings: [(UInt16, UInt16)] = [(8000, 50), (9000, 60), (0, 70)]
        #expect(Self.order(bindings, exposed: [80], start: 80) == ["9000->60", "8000->50", "0->70"])
        #expect(Self.order(bindings, start: 50) == ["0->70", "9000->60", "8000->50"])
    }

    @Test func rotationsStartWithTheSortedKeys() {
        let ports = [Port(80, .tcp), Port(443, .tcp), Port(53, .udp), Port(1000, .tcp)]
        #expect(
            DockerPortOrder.rotations(of: ports).map { $0.map(\.description) } == [
                ["1000/tcp", "443/tcp", "53/udp", "80/tcp"], ["443/tcp", "53/udp", "80/tcp", "1000/tcp"],
                ["53/udp", "80/tcp", "1000/tcp", "443/tcp"], ["80/tcp", "1000/tcp", "443/tcp", "53/udp"],
            ])
    }

    /// With a strict order Go's pdqsort sorts, on every path: insertion sort, partitioning,
    /// partial insertion sort, pattern breaking and the heapsort fallback.
    @Test(arguments: [5, 12, 13, 40, 49, 50, 51, 200, 1000])
    func goSortSortsWithAStrictOrder(count: Int) {
        var generator = SeededGenerator(seed: UInt64(count))
        let inputs: [[Int]] = [
            (0..<count).map { _ in Int(generator.next() % 50) }, Array(0..<count), Array((0..<count).reversed()),
            (0..<count).map { $0 % 7 }, (0..<count).map { $0 < count / 2 ? $0 : count - $0 },
        ]
        for input in inputs {
            var sorted = input
            GoSort.sort(&sorted, by: <)
            #expect(sorted == input.sorted())
        }
    }

    /// Go 1.19 sorts 12 entries or fewer by insertion sort alone: an inconsistent comparison
    /// gives what insertion sort gives.
    @Test func goSortIsInsertionSortUpToTwelve() {
        var data = Array(0..<12)
        GoSort.sort(&data) { _, _ in true }  // every element moves to the front in turn
        #expect(data == Array((0..<12).reversed()))
    }

    static func checked(_ settings: String) throws -> Result<Policy, DiagnosticError> {
        let text =
            "network bridge {\n    bridge docker0\n    subnet 172.17.0.0/16\n}\ncontainer c {\n"
            + "    attach bridge 172.17.0.2\n" + settings + "}\n"
        let (loaded, diagnostics) = PolicyLoader.load("inline.policy") { _ in text }
        try #require(diagnostics.isEmpty)
        return Checker.check(loaded)
    }

    /// A fixed host port inside the ephemeral range is taken when its binding comes, so a
    /// daemon-chosen port allocated before it may already hold it.
    @Test func daemonChosenPortsFollowTheBindingOrder() throws {
        // Map order 5000/tcp, 80/tcp: the fixed 32768 sorts first; 5000 gets 32769.
        let policy = try Self.checked("    publish 5000/tcp\n    publish 32768 -> 80\n").get()
        #expect(policy.containers[0].publishes.map(\.hostPorts.first) == [32769, 32768])
        // Map order 80/tcp, 5000/tcp: 5000 sorts first and takes 32768; Docker refuses the container.
        guard case .failure(let error) = try Self.checked("    publish 32768 -> 80\n    publish 5000/tcp\n") else {
            Issue.record("a fixed port the daemon already handed out was accepted")
            return
        }
        #expect(
            error.diagnostics.map { "\($0.range.start.line): \($0.message)" } == [
                "7: host port 32768/tcp is already taken: the daemon chose it for container 'c' (line 8)"
            ])
    }

    /// `chosen PORT` says the port the daemon chose where its counter had moved on (containers
    /// since removed): the publish takes it, still sorts as daemon-chosen (host port 0), and the
    /// counter moves on from it. Map order 80, 53, 6000, 7000 sorts 7000 first: it takes 32771,
    /// and 6000 the next port, 32772 (without the clause, 32768 and 32769).
    @Test func aChosenPortIsTakenAndTheCounterMovesOnFromIt() throws {
        let policy = try Self.checked(
            "    publish 9000 -> 80\n    publish 7000/tcp chosen 32771\n    publish 6000/tcp\n    publish 53/udp\n"
        )
        .get()
        let publishes = policy.containers[0].publishes
        #expect(publishes.map(\.hostPorts.first) == [9000, 32771, 32772, 32768])
        #expect(publishes.map(\.hostPortIsEphemeral) == [false, true, true, true])
        #expect(publishes.map(\.chosenPort) == [nil, 32771, nil, nil])
    }
}

/// Publishes Docker accepts and the language could not say before.
@Suite struct PublishFormTests {
    static func check(_ text: String) throws -> Policy {
        let (loaded, diagnostics) = PolicyLoader.load("inline.policy") { _ in text }
        try #require(diagnostics.isEmpty)
        return try Checker.check(loaded).get()
    }

    /// `docker run --network INTERNAL -p ...` is accepted and maps nothing.
    @Test func publishesOnInternalOnlyContainersWarnAndMapNothing() throws {
        let text = """
            network bridge {
                bridge docker0
                subnet 172.17.0.0/16
            }
            network intra {
                bridge br-intra
                subnet 198.18.9.0/24
                internal
            }
            container db {
                attach intra 198.18.9.5
                publish 8080 -> 5432/tcp
                expose 53/udp
                publish-all
            }
            container web {
                attach bridge 172.17.0.2
                publish 8080 -> 80/tcp
                publish 81/tcp
            }
            """
        let policy = try Self.check(text)
        #expect(
            policy.warnings.map { "\($0.range.start.line):\($0.range.start.column): \($0.message)" } == [
                "12:5: 'publish' has no effect: container 'db' is attached only to internal networks",
                "14:5: 'publish-all' has no effect: container 'db' is attached only to internal networks",
            ])
        // db holds neither 8080 nor the first daemon-chosen port.
        #expect(policy.container("web")?.publishes.map(\.hostPorts.first) == [8080, 32768])
        let rules = try compileInline(text).get()
        #expect(!rules.contains("198.18.9.5"))
    }

    /// Docker's `-p 127.0.0.1::443/udp` and `-p [::1]::80`.
    @Test func aHostAddressWithADaemonChosenPort() throws {
        let policy = try Self.check(
            """
            network bridge {
                bridge docker0
                subnet 172.17.0.0/16
                subnet fd00:17::/64
            }
            container web {
                attach bridge 172.17.0.2
                attach bridge fd00:17::2
                publish 127.0.0.1 -> 443/udp
                publish [::1] -> 80
            }
            """)
        let publishes = try #require(policy.container("web")?.publishes)
        #expect(publishes.map(\.hostAddress?.description) == ["127.0.0.1", "::1"])
        #expect(publishes.allSatisfy { $0.hostPortIsEphemeral })
        #expect(publishes.map(\.hostPorts.first) == [32768, 32768])
    }
}
