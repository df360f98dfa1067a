import PortcullisDocker
import PortcullisWatch
import Testing

/// The tracker on a sequence of events against a fake daemon: after each event its inventory
/// is what a full read would give, and it says what changed (nil when nothing the firewall
/// depends on did).
struct InventoryTrackerTests {
    static func event(_ type: String, _ action: String, _ id: String, _ attributes: [String: String] = [:])
        -> EngineEvent
    {
        EngineEvent(type: type, action: action, actorID: id, attributes: attributes)
    }

    @Test func eventsKeepTheInventoryAsAFullReadWouldGiveIt() async throws {
        let daemon = FakeInspector()
        daemon.set(
            Fake.network("bridge", id: "n0", octet: 1, created: "2024-01-01T00:00:00Z", isDefault: true), id: "n0")
        var tracker = InventoryTracker(daemon.inventory())

        // Each step: what the daemon does, the event it sends, what the tracker must say.
        let front = Fake.network("front", id: "n1", octet: 2, created: "2024-01-02T00:00:00Z")
        let web = Fake.container("web", id: "c1", started: "2024-01-03T00:00:01Z", on: [("front", 2, 10)])
        let api = Fake.container("api", id: "c2", started: "2024-01-03T00:00:02Z", on: [("bridge", 1, 2)])
        let apiOnTwo = Fake.container(
            "api", id: "c2", started: "2024-01-03T00:00:02Z", on: [("bridge", 1, 2), ("front", 2, 11)])
        let webAgain = Fake.container("web", id: "c1", started: "2024-01-03T00:00:09Z", on: [("front", 2, 12)])
        let steps: [(change: () -> Void, event: EngineEvent, expected: InventoryChange?)] = [
            ({ daemon.set(front, id: "n1") }, Self.event("network", "create", "n1"), .networkCreated("front")),
            // Created, not started: no rules yet.
            ({}, Self.event("container", "create", "c1"), nil),
            // `docker run --network front`: connected before it runs, then started.
            ({}, Self.event("network", "connect", "n1", ["container": "c1"]), nil),
            ({ daemon.set(web, id: "c1") }, Self.event("container", "start", "c1"), .containerStarted("web")),
            ({ daemon.set(api, id: "c2") }, Self.event("container", "start", "c2"), .containerStarted("api")),
            (
                { daemon.set(apiOnTwo, id: "c2") }, Self.event("network", "connect", "n1", ["container": "c2"]),
                .containerChanged("api")
            ),
            // The same event again changes nothing.
            ({}, Self.event("network", "connect", "n1", ["container": "c2"]), nil),
            (
                { daemon.set(api, id: "c2") }, Self.event("network", "disconnect", "n1", ["container": "c2"]),
                .containerChanged("api")
            ),
            (
                { daemon.set(nil as Inventory.Container?, id: "c1") }, Self.event("container", "die", "c1"),
                .containerStopped("web")
            ),
            // Restarted: later in start order than api now.
            ({ daemon.set(webAgain, id: "c1") }, Self.event("container", "start", "c1"), .containerStarted("web")),
            // Events the filter does not ask for, and one for another type, are ignored.
            ({}, Self.event("container", "exec_start: sh", "c1"), nil),
            ({}, Self.event("volume", "create", "v1"), nil),
            (
                { daemon.set(nil as Inventory.Container?, id: "c2") }, Self.event("container", "destroy", "c2"),
                .containerStopped("api")
            ),
            // A die for a container already gone.
            ({}, Self.event("container", "die", "c2"), nil),
            (
                { daemon.set(nil as Inventory.Network?, id: "n1") }, Self.event("network", "destroy", "n1"),
                .networkRemoved("front")
            ),
        ]
        for (number, step) in steps.enumerated() {
            step.change()
            let change = try await tracker.apply(step.event, inspector: daemon)
            #expect(change == step.expected, "step \(number): \(step.event.type) \(step.event.action)")
            #expect(tracker.inventory == daemon.inventory(), "step \(number)")
        }
        #expect(tracker.inventory.containers.map(\.name) == ["web"])
        #expect(tracker.inventory.networks.map(\.name) == ["bridge"])
    }

    @Test func containersAndNetworksKeepTheOrderOfAFullRead() async throws {
        let daemon = FakeInspector()
        var tracker = InventoryTracker(daemon.inventory())
        // Events out of order (a start seen late) still give start order; networks creation
        // order with the default bridge first.
        let late = Fake.container("late", id: "c9", started: "2024-01-01T00:00:09Z", on: [])
        let early = Fake.container("early", id: "c1", started: "2024-01-01T00:00:01Z", on: [])
        for (container, id) in [(late, "c9"), (early, "c1")] {
            daemon.set(container, id: id)
            _ = try await tracker.apply(Self.event("container", "start", id), inspector: daemon)
        }
        let second = Fake.network("second", id: "n2", octet: 3, created: "2024-01-02T00:00:00Z")
        let first = Fake.network("first", id: "n1", octet: 2, created: "2024-01-01T00:00:00Z")
        let bridge = Fake.network("bridge", id: "n0", octet: 1, created: "2024-01-03T00:00:00Z", isDefault: true)
        for (network, id) in [(second, "n2"), (first, "n1"), (bridge, "n0")] {
            daemon.set(network, id: id)
            _ = try await tracker.apply(Self.event("network", "create", id), inspector: daemon)
        }
        #expect(tracker.inventory.containers.map(\.name) == ["early", "late"])
        #expect(tracker.inventory.networks.map(\.name) == ["bridge", "first", "second"])
        #expect(tracker.inventory == daemon.inventory())
    }

    @Test func anInspectorErrorLeavesTheInventoryAsItWas() async throws {
        let daemon = FakeInspector()
        daemon.set(Fake.container("web", id: "c1", started: "2024-01-01T00:00:01Z", on: []), id: "c1")
        var tracker = InventoryTracker(daemon.inventory())
        let before = tracker.inventory
        daemon.failing = true
        await #expect(throws: InventoryError.self) {
            try await tracker.apply(Self.event("network", "connect", "n1", ["container": "c1"]), inspector: daemon)
        }
        #expect(tracker.inventory == before)
        // A connect without the container attribute is not understood, and ignored.
        #expect(try await tracker.apply(Self.event("network", "connect", "n1"), inspector: daemon) == nil)
    }
}
