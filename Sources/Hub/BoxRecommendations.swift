import Foundation
import HubGateway
import RecommendRuntime
import STBProtocol

/// A box's `recommendations` request (protocol 1.2) answered by the same service call as
/// `GET /api/v1/devices/{id}/recommendations`, encoded as that route encodes it (JSON, optional
/// fields left out), with the hardware model from the box's hello as its segment.
struct ServiceRecommendations: SessionRecommendations {
    let service: RecommendService

    func recommendations(device: String, model: String, n: Int) async throws -> JSONValue {
        let answer = try await service.recommendations(device: device, segment: model, n: n)
        return try JSONParser.parse(try JSONEncoder().encode(answer))
    }
}
