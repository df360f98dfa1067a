import PortcullisDocker
import Testing

/// The `/events` stream as dockerd 20.10 writes it (one JSON document a line, recorded from
/// the daemon the Docker tests start), cut into chunks anywhere.
struct EngineEventTests {
    static let recorded = [
        #"{"status":"start","id":"4f1c","from":"tiny:1","Type":"container","Action":"start","Actor":{"ID":"4f1c","Attributes":{"image":"tiny:1","name":"web"}},"scope":"local","time":1712345678,"timeNano":1712345678123456789}"#,
        #"{"Type":"network","Action":"connect","Actor":{"ID":"9a8b","Attributes":{"container":"4f1c","name":"front","type":"bridge"}},"scope":"local","time":1712345679,"timeNano":1712345679000000001}"#,
        #"{"Type":"network","Action":"destroy","Actor":{"ID":"77aa","Attributes":{"name":"old","type":"bridge"}},"scope":"local","time":1712345680}"#,
    ]

    static var stream: [UInt8] { Array(recorded.map { $0 + "\n" }.joined().utf8) }

    static let expected = [
        EngineEvent(
            type: "container", action: "start", actorID: "4f1c", attributes: ["image": "tiny:1", "name": "web"],
            timeNano: 1_712_345_678_123_456_789),
        EngineEvent(
            type: "network", action: "connect", actorID: "9a8b",
            attributes: ["container": "4f1c", "name": "front", "type": "bridge"], timeNano: 1_712_345_679_000_000_001),
        // No timeNano: the seconds.
        EngineEvent(
            type: "network", action: "destroy", actorID: "77aa", attributes: ["name": "old", "type": "bridge"],
            timeNano: 1_712_345_680_000_000_000),
    ]

    /// Every way of cutting the stream in two, and in chunks of 1, 7 and 64 bytes.
    @Test func chunksCutAnywhereGiveTheSameEvents() throws {
        let bytes = Self.stream
        var cuts: [[ArraySlice<UInt8>]] = (0...bytes.count).map { [bytes[..<$0], bytes[$0...]] }
        for size in [1, 7, 64] {
            cuts.append(stride(from: 0, to: bytes.count, by: size).map { bytes[$0..<min($0 + size, bytes.count)] })
        }
        for chunks in cuts {
            var decoder = EngineEventDecoder()
            var events: [EngineEvent] = []
            for chunk in chunks { events += try decoder.feed(chunk) }
            events += try decoder.finish()
            #expect(events == Self.expected)
        }
    }

    @Test func severalEventsInOneChunkComeOutInOrder() throws {
        var decoder = EngineEventDecoder()
        #expect(try decoder.feed(Self.stream) == Self.expected)
        #expect(try decoder.finish() == [])
    }

    @Test func aPartialLineWaitsForItsEnd() throws {
        var decoder = EngineEventDecoder()
        let line = Array(Self.recorded[0].utf8)
        #expect(try decoder.feed(line[..<100]) == [])
        #expect(try decoder.feed(line[100...]) == [])
        #expect(try decoder.feed(Array("\r\n\n".utf8)) == [Self.expected[0]])
        // The last line of a stream that ends without a newline is still read.
        #expect(try decoder.feed(Array(Self.recorded[2].utf8)) == [])
        #expect(try decoder.finish() == [Self.expected[2]])
    }

    @Test func badLinesAreErrorsNamingTheStream() {
        var decoder = EngineEventDecoder()
        #expect(throws: InventoryError.self) { try decoder.feed(Array("{\"Type\": \n".utf8)) }
        do {
            var fresh = EngineEventDecoder()
            _ = try fresh.feed(Array(#"{"Type":"container","Actor":{"ID":"x"}}"#.utf8 + [10]))
            Issue.record("an event without Action was read")
        } catch {
            #expect(error.description == "/events: $: missing 'Action'")
        }
        var endless = EngineEventDecoder()
        #expect(throws: InventoryError.self) {
            try endless.feed(Array(repeating: UInt8(ascii: "x"), count: EngineEventDecoder.maximumLine + 1))
        }
    }
}
