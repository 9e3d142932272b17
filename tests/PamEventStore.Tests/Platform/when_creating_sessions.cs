using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Marten;
using PamEventStore.Tests.Infrastructure;

namespace PamEventStore.Tests.Platform;

[Collection(PamStoreCollection.Name)]
public sealed class when_creating_sessions(PamStoreHost store)
{
    private readonly Org _org = store.NewOrg();

    private static readonly DateTimeOffset ExpiresAt = new(2099, 1, 2, 3, 4, 5, 678, TimeSpan.FromHours(2));

    /// <summary>A complete, valid body; tests change or remove one field at a time.</summary>
    private static JsonObject Body(Guid? id = null) => new()
    {
        ["id"] = (id ?? Guid.NewGuid()).ToString(),
        ["projectId"] = "project-1",
        ["resourceType"] = "postgres",
        ["resourceName"] = "orders-db",
        ["accountName"] = "app_rw",
        ["userId"] = "user-42",
        ["gatewayId"] = "gw-7",
        ["expiresAt"] = ExpiresAt.ToString("O"),
    };

    private Task<Reply> Create(JsonNode? body, string? token = null) => Create(body?.ToJsonString() ?? "null", token);

    private Task<Reply> Create(string json, string? token = null) =>
        _org.SendAsync(HttpMethod.Post, Org.Sessions, token ?? _org.UserToken(), new StringContent(json, Encoding.UTF8, "application/json"));

    private async Task<int> StreamCount(Guid id)
    {
        await using var session = store.Host.DocumentStore().QuerySession(_org.Id);
        return (await session.Events.FetchStreamAsync(id)).Count(e => e.EventTypeName == "session_started");
    }

    private static void ShouldBeInvalid(Reply reply, string field)
    {
        reply.ShouldBeProblem(HttpStatusCode.BadRequest, "invalid-request");
        reply.Body.GetProperty("detail").GetString()!.ShouldContain($"'{field}'", Case.Sensitive);
    }

    // ---- creating

    [Fact]
    public async Task a_new_session_is_created_with_the_fields_sent()
    {
        var id = Guid.NewGuid();

        var reply = await Create(Body(id));

        reply.Status.ShouldBe(HttpStatusCode.Created, reply.Body.ToString());
        var session = reply.Body.GetProperty("session");
        session.GetProperty("id").GetGuid().ShouldBe(id);
        session.GetProperty("projectId").GetString().ShouldBe("project-1");
        session.GetProperty("resourceType").GetString().ShouldBe("postgres");
        session.GetProperty("resourceName").GetString().ShouldBe("orders-db");
        session.GetProperty("accountName").GetString().ShouldBe("app_rw");
        session.GetProperty("userId").GetString().ShouldBe("user-42");
        session.GetProperty("gatewayId").GetString().ShouldBe("gw-7");
        session.GetProperty("expiresAt").GetDateTimeOffset().ShouldBe(ExpiresAt);
        session.GetProperty("status").GetString().ShouldBe("starting");
        session.GetProperty("batchCount").GetInt64().ShouldBe(0);
        session.GetProperty("eventCount").GetInt64().ShouldBe(0);
        session.GetProperty("bytes").GetInt64().ShouldBe(0);
        session.GetProperty("gapCount").GetInt32().ShouldBe(0);
        session.GetProperty("conflictCount").GetInt32().ShouldBe(0);
        session.GetProperty("complete").GetBoolean().ShouldBeTrue();
        session.GetProperty("hasLegacyLogs").GetBoolean().ShouldBeFalse();
        session.GetProperty("startedAt").ValueKind.ShouldBe(JsonValueKind.Null);
        session.GetProperty("endedAt").ValueKind.ShouldBe(JsonValueKind.Null);
    }

    [Fact]
    public async Task the_answer_says_where_the_session_is()
    {
        var id = Guid.NewGuid();

        var reply = await Create(Body(id));

        reply.Response.Headers.Location.ShouldNotBeNull();
        reply.Response.Headers.Location.ToString().ShouldBe($"/api/v1/pam/sessions/{id}");
        (await _org.SendAsync(HttpMethod.Get, reply.Response.Headers.Location.ToString(), _org.UserToken())).Status.ShouldBe(HttpStatusCode.OK);
    }

    [Fact]
    public async Task the_created_session_reads_back_as_it_was_answered()
    {
        var id = Guid.NewGuid();
        var created = (await Create(Body(id))).Body.GetProperty("session");

        var read = await _org.SessionAsync(id);

        read.GetRawText().ShouldBe(created.GetRawText());
    }

    [Fact]
    public async Task without_an_id_a_uuid_is_generated()
    {
        var body = Body();
        body.Remove("id");

        var reply = await Create(body);

        reply.Status.ShouldBe(HttpStatusCode.Created, reply.Body.ToString());
        var id = reply.Body.GetProperty("session").GetProperty("id").GetGuid();
        id.ShouldNotBe(Guid.Empty);
        reply.Response.Headers.Location!.ToString().ShouldBe($"/api/v1/pam/sessions/{id}");
        await _org.SessionAsync(id);
    }

    [Fact]
    public async Task two_creates_without_an_id_are_two_sessions()
    {
        var body = Body();
        body.Remove("id");

        var first = (await Create(body)).Body.GetProperty("session").GetProperty("id").GetGuid();
        var second = (await Create(body)).Body.GetProperty("session").GetProperty("id").GetGuid();

        first.ShouldNotBe(second);
    }

    [Fact]
    public async Task optional_fields_may_be_left_out()
    {
        var body = Body();
        body.Remove("gatewayId");
        body.Remove("expiresAt");

        var reply = await Create(body);

        reply.Status.ShouldBe(HttpStatusCode.Created, reply.Body.ToString());
        reply.Body.GetProperty("session").GetProperty("gatewayId").ValueKind.ShouldBe(JsonValueKind.Null);
        reply.Body.GetProperty("session").GetProperty("expiresAt").ValueKind.ShouldBe(JsonValueKind.Null);
    }

    [Fact]
    public async Task fields_of_exactly_256_characters_are_accepted()
    {
        var body = Body();
        foreach (var field in new[] { "projectId", "resourceName", "accountName", "userId", "gatewayId" }) body[field] = new string('x', 256);

        (await Create(body)).Status.ShouldBe(HttpStatusCode.Created);
    }

    // ---- idempotent retries

    [Fact]
    public async Task the_same_id_and_body_again_answers_the_stored_session()
    {
        var id = Guid.NewGuid();
        var first = await Create(Body(id));

        var again = await Create(Body(id));

        again.Status.ShouldBe(HttpStatusCode.OK, again.Body.ToString());
        again.Body.GetProperty("session").GetProperty("createdAt").GetDateTimeOffset()
            .ShouldBe(first.Body.GetProperty("session").GetProperty("createdAt").GetDateTimeOffset());
        again.Body.GetProperty("session").GetRawText().ShouldBe(first.Body.GetProperty("session").GetRawText());
        (await StreamCount(id)).ShouldBe(1);
    }

    [Fact]
    public async Task the_same_expiry_written_in_another_time_zone_is_the_same_body()
    {
        var id = Guid.NewGuid();
        await Create(Body(id));
        var body = Body(id);
        body["expiresAt"] = ExpiresAt.ToUniversalTime().ToString("O");

        (await Create(body)).Status.ShouldBe(HttpStatusCode.OK);
    }

    [Fact]
    public async Task a_retry_after_the_session_started_answers_it_as_it_is_now()
    {
        var id = Guid.NewGuid();
        var body = Body(id);
        body["gatewayId"] = Org.Gateway;
        await Create(body);
        await _org.UploadAsync(id, 0, Recordings.Lines(0, 2));

        var again = await Create(body);

        again.Status.ShouldBe(HttpStatusCode.OK, again.Body.ToString());
        again.Body.GetProperty("session").GetProperty("status").GetString().ShouldBe("active");
        again.Body.GetProperty("session").GetProperty("batchCount").GetInt64().ShouldBe(1);
    }

    [Theory]
    [InlineData("projectId", "project-2")]
    [InlineData("resourceType", "ssh")]
    [InlineData("resourceName", "other-db")]
    [InlineData("accountName", "postgres")]
    [InlineData("userId", "user-43")]
    [InlineData("gatewayId", "gw-8")]
    [InlineData("gatewayId", null)]
    [InlineData("expiresAt", "2099-01-02T01:04:06.678+00:00")]
    [InlineData("expiresAt", null)]
    public async Task the_same_id_with_another_field_is_a_conflict_and_changes_nothing(string field, string? value)
    {
        var id = Guid.NewGuid();
        var original = (await Create(Body(id))).Body.GetProperty("session").GetRawText();
        var changed = Body(id);
        changed[field] = value;

        var reply = await Create(changed);

        reply.ShouldBeProblem(HttpStatusCode.Conflict, "session-exists");
        reply.Body.GetProperty("detail").GetString()!.ShouldContain(id.ToString());
        (await _org.SessionAsync(id)).GetRawText().ShouldBe(original);
        (await StreamCount(id)).ShouldBe(1);
    }

    [Fact]
    public async Task a_session_created_without_gateway_conflicts_with_a_retry_naming_one()
    {
        var id = Guid.NewGuid();
        var body = Body(id);
        body.Remove("gatewayId");
        await Create(body);

        (await Create(Body(id))).ShouldBeProblem(HttpStatusCode.Conflict, "session-exists");

        (await _org.SessionAsync(id)).GetProperty("gatewayId").ValueKind.ShouldBe(JsonValueKind.Null);
    }

    [Fact]
    public async Task eight_concurrent_creates_of_the_same_session_all_succeed_and_start_one_stream()
    {
        var id = Guid.NewGuid();

        var replies = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Create(Body(id))));

        replies.ShouldAllBe(r => r.Status == HttpStatusCode.Created || r.Status == HttpStatusCode.OK,
            string.Join("\n", replies.Select(r => $"{(int)r.Status} {r.Body}")));
        replies.Count(r => r.Status == HttpStatusCode.Created).ShouldBe(1);
        replies.Select(r => r.Body.GetProperty("session").GetProperty("createdAt").GetDateTimeOffset()).Distinct().Count().ShouldBe(1);
        (await StreamCount(id)).ShouldBe(1);
    }

    [Fact]
    public async Task eight_concurrent_creates_of_the_same_id_with_different_bodies_store_one_of_them()
    {
        var id = Guid.NewGuid();

        var replies = await Task.WhenAll(Enumerable.Range(0, 8).Select(i =>
        {
            var body = Body(id);
            body["resourceName"] = $"db-{i}";
            return Create(body);
        }));

        replies.ShouldAllBe(r => r.Status == HttpStatusCode.Created || r.Status == HttpStatusCode.Conflict,
            string.Join("\n", replies.Select(r => $"{(int)r.Status} {r.Body}")));
        replies.Count(r => r.Status == HttpStatusCode.Created).ShouldBe(1);
        (await StreamCount(id)).ShouldBe(1);
    }

    // ---- validation

    public static TheoryData<string> RequiredFields => new() { "projectId", "resourceType", "resourceName", "accountName", "userId" };

    [Theory]
    [MemberData(nameof(RequiredFields))]
    public async Task a_missing_required_field_is_invalid_and_named(string field)
    {
        var body = Body();
        body.Remove(field);

        ShouldBeInvalid(await Create(body), field);
    }

    [Theory]
    [MemberData(nameof(RequiredFields))]
    public async Task a_null_required_field_is_invalid_and_named(string field)
    {
        var body = Body();
        body[field] = null;

        ShouldBeInvalid(await Create(body), field);
    }

    [Theory]
    [MemberData(nameof(RequiredFields))]
    public async Task an_empty_required_field_is_invalid_and_named(string field)
    {
        var body = Body();
        body[field] = "";

        ShouldBeInvalid(await Create(body), field);
    }

    [Theory]
    [MemberData(nameof(RequiredFields))]
    public async Task a_blank_required_field_is_invalid_and_named(string field)
    {
        var body = Body();
        body[field] = " \t ";

        ShouldBeInvalid(await Create(body), field);
    }

    [Theory]
    [InlineData("projectId")]
    [InlineData("resourceType")]
    [InlineData("resourceName")]
    [InlineData("accountName")]
    [InlineData("userId")]
    [InlineData("gatewayId")]
    public async Task a_field_longer_than_256_characters_is_invalid_and_named(string field)
    {
        var body = Body();
        body[field] = new string('x', 257);

        ShouldBeInvalid(await Create(body), field);
    }

    /// <summary>PostgreSQL stores no NUL in JSON, and a name with a line break or an escape splits or colours the log lines and screens it is shown on.</summary>
    public static TheoryData<string, string> ControlCharacters => new()
    {
        { "projectId", "project\u00001" }, { "resourceName", "orders\u0000db" }, { "accountName", "app_rw\u0000" }, { "userId", "\u0000user-42" },
        { "gatewayId", "gw\u00007" }, { "resourceName", "orders-db\n" }, { "accountName", "app\u001b[31mrw" }, { "userId", "user\u007f42" }, { "resourceName", "orders\u0085db" }, { "accountName", "app\u2028rw" },
    };

    [Theory]
    [MemberData(nameof(ControlCharacters))]
    public async Task a_field_holding_a_control_character_is_invalid_and_named(string field, string value)
    {
        var body = Body();
        body[field] = value;

        ShouldBeInvalid(await Create(body), field);
    }

    [Theory]
    [InlineData("projectId")]
    [InlineData("resourceName")]
    [InlineData("userId")]
    public async Task a_field_holding_half_a_surrogate_pair_is_a_bad_request(string field)
    {
        var json = Body().ToJsonString().Replace("\"" + field + "\":\"", "\"" + field + "\":\"\\ud800", StringComparison.Ordinal);
        json.ShouldContain("\\ud800");

        (await Create(json)).ShouldBeProblem(HttpStatusCode.BadRequest, "invalid-request");
    }

    [Fact]
    public async Task names_in_any_script_are_accepted()
    {
        var body = Body();
        body["resourceName"] = "база-данных 注文 🚀";
        body["accountName"] = "Größe admin";

        (await Create(body)).Status.ShouldBe(HttpStatusCode.Created);
    }

    [Theory]
    [InlineData("SSH")]
    [InlineData("-ssh")]
    [InlineData("_ssh")]
    [InlineData("ssh server")]
    [InlineData("ssh.v2")]
    [InlineData("ssh/")]
    [InlineData("pöstgres")]
    [InlineData("abcdefghijabcdefghijabcdefghijabcdefghijk")]
    [InlineData("ssh\n")]
    [InlineData("\nssh")]
    public async Task a_resource_type_that_is_not_a_lowercase_name_is_invalid(string resourceType)
    {
        var body = Body();
        body["resourceType"] = resourceType;

        ShouldBeInvalid(await Create(body), "resourceType");
    }

    [Theory]
    [InlineData("ssh")]
    [InlineData("k8s")]
    [InlineData("9p")]
    [InlineData("my_db-2")]
    [InlineData("abcdefghijabcdefghijabcdefghijabcdefghij")]
    public async Task a_lowercase_resource_type_is_accepted(string resourceType)
    {
        var body = Body();
        body["resourceType"] = resourceType;

        (await Create(body)).Status.ShouldBe(HttpStatusCode.Created);
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/octet-stream")]
    [InlineData("application/merge-patch+json")]
    [InlineData("application/json-patch+json")]
    [InlineData("text/json")]
    [InlineData("application/json; charset=utf-16")]
    [InlineData("application/json, text/plain")]
    [InlineData(null)]
    public async Task a_body_that_is_not_declared_json_in_utf_8_is_refused_as_the_uploads_refuse_one(string? contentType)
    {
        var id = Guid.NewGuid();
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(Body(id).ToJsonString()));
        if (contentType is not null) content.Headers.TryAddWithoutValidation("Content-Type", contentType).ShouldBeTrue();

        var reply = await _org.SendAsync(HttpMethod.Post, Org.Sessions, _org.UserToken(), content);

        reply.ShouldBeProblem(HttpStatusCode.UnsupportedMediaType, "unsupported-media-type");
        reply.Body.GetProperty("detail").GetString()!.ShouldContain("application/json");
        (await StreamCount(id)).ShouldBe(0);
    }

    [Theory]
    [InlineData("application/json")]
    [InlineData("application/json; charset=utf-8")]
    public async Task a_body_declared_json_in_utf_8_is_read(string contentType)
    {
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(Body().ToJsonString()));
        content.Headers.TryAddWithoutValidation("Content-Type", contentType).ShouldBeTrue();

        (await _org.SendAsync(HttpMethod.Post, Org.Sessions, _org.UserToken(), content)).Status.ShouldBe(HttpStatusCode.Created);
    }


    [Fact]
    public async Task the_empty_uuid_is_not_a_session_id()
    {
        ShouldBeInvalid(await Create(Body(Guid.Empty)), "id");
    }

    [Fact]
    public async Task an_expiry_in_the_past_is_invalid()
    {
        var body = Body();
        body["expiresAt"] = store.Clock.GetUtcNow().AddMinutes(-1).ToString("O");

        ShouldBeInvalid(await Create(body), "expiresAt");
    }

    [Fact]
    public async Task an_empty_gateway_id_is_invalid()
    {
        var body = Body();
        body["gatewayId"] = "";

        ShouldBeInvalid(await Create(body), "gatewayId");
    }

    [Fact]
    public async Task a_blank_gateway_id_is_invalid()
    {
        var body = Body();
        body["gatewayId"] = "   ";

        ShouldBeInvalid(await Create(body), "gatewayId");
    }

    [Fact]
    public async Task a_refused_body_creates_nothing()
    {
        var id = Guid.NewGuid();
        var body = Body(id);
        body["resourceType"] = "Not Valid";

        await Create(body);

        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{id}", _org.UserToken())).Status.ShouldBe(HttpStatusCode.NotFound);
        (await StreamCount(id)).ShouldBe(0);
    }

    // ---- bodies that are not a session

    private static void ShouldBeBadRequestProblem(Reply reply) => reply.ShouldBeProblem(HttpStatusCode.BadRequest, "invalid-request");

    [Theory]
    [InlineData("{")]
    [InlineData("{\"projectId\": \"p\",}")]
    [InlineData("not json")]
    [InlineData("[1, 2]")]
    [InlineData("\"a string\"")]
    [InlineData("{\"projectId\": 5}")]
    [InlineData("{\"id\": \"not-a-uuid\"}")]
    [InlineData("{\"expiresAt\": \"tomorrow\"}")]
    public async Task a_malformed_json_body_is_a_bad_request_problem(string json)
    {
        ShouldBeBadRequestProblem(await Create(json));
    }

    [Fact]
    public async Task a_malformed_json_body_is_not_logged_as_an_error_of_the_node()
    {
        var before = store.Logs.Entries.Count;

        ShouldBeBadRequestProblem(await Create("{\"projectId\": \"p\",}"));

        store.Logs.Entries.Skip(before).Where(e => e.Level >= Microsoft.Extensions.Logging.LogLevel.Error).ShouldBeEmpty();
    }

    [Fact]
    public async Task a_malformed_json_body_is_an_invalid_request_problem()
    {
        // Every error is meant to carry a urn:pam-event-store:problem type clients can branch on.
        (await Create("{")).ShouldBeProblem(HttpStatusCode.BadRequest, "invalid-request");
    }

    [Theory]
    [InlineData("projectId", "\"project-2\"")]
    [InlineData("id", "\"01a2480c-3dc7-7192-8555-ed8edbb1b14e\"")]
    public async Task a_field_named_twice_is_a_bad_request_whichever_a_proxy_would_have_read(string field, string other)
    {
        // A proxy or access rule in front of the service may read the first, where a lenient reader takes the last.
        var json = "{\"" + field + "\":" + other + "," + Body().ToJsonString()[1..];
        json.ShouldContain($"\"{field}\"");

        var reply = await Create(json);

        reply.ShouldBeProblem(HttpStatusCode.BadRequest, "invalid-request");
        reply.Body.GetProperty("detail").GetString()!.ShouldContain(field);
    }

    [Theory]
    [InlineData("{\"id\":\"not-a-uuid\"}")]
    [InlineData("{\"projectId\":[1]}")]
    [InlineData("[]")]
    public async Task a_bad_request_s_detail_names_no_type_of_the_service(string json)
    {
        var reply = await Create(json);

        reply.ShouldBeProblem(HttpStatusCode.BadRequest, "invalid-request");
        reply.Body.GetProperty("detail").GetString()!.ShouldNotContain("PamEventStore");
    }

    [Fact]
    public async Task a_json_null_body_is_a_bad_request_not_a_server_error()
    {
        ShouldBeBadRequestProblem(await Create("null"));
    }

    [Fact]
    public async Task an_empty_body_is_a_bad_request_not_a_server_error()
    {
        ShouldBeBadRequestProblem(await Create(""));
    }

    [Fact]
    public async Task an_empty_json_object_names_the_first_missing_field()
    {
        ShouldBeInvalid(await Create("{}"), "projectId");
    }

    // ---- tenants

    [Fact]
    public async Task the_same_id_in_two_orgs_is_two_separate_sessions()
    {
        var id = Guid.NewGuid();
        var other = store.NewOrg();
        var otherBody = Body(id);
        otherBody["resourceName"] = "other-orgs-db";

        var mine = await Create(Body(id));
        var theirs = await other.SendAsync(HttpMethod.Post, Org.Sessions, other.UserToken(),
            new StringContent(otherBody.ToJsonString(), Encoding.UTF8, "application/json"));

        mine.Status.ShouldBe(HttpStatusCode.Created, mine.Body.ToString());
        theirs.Status.ShouldBe(HttpStatusCode.Created, theirs.Body.ToString());
        (await _org.SessionAsync(id)).GetProperty("resourceName").GetString().ShouldBe("orders-db");
        (await other.SessionAsync(id)).GetProperty("resourceName").GetString().ShouldBe("other-orgs-db");
    }

    [Fact]
    public async Task the_same_id_and_body_in_another_org_is_created_there_not_answered_from_here()
    {
        var id = Guid.NewGuid();
        var other = store.NewOrg();
        await Create(Body(id));

        var theirs = await other.SendAsync(HttpMethod.Post, Org.Sessions, other.UserToken(),
            new StringContent(Body(id).ToJsonString(), Encoding.UTF8, "application/json"));

        theirs.Status.ShouldBe(HttpStatusCode.Created, theirs.Body.ToString());
    }

    [Fact]
    public async Task uploads_to_the_same_id_in_two_orgs_stay_apart()
    {
        var id = Guid.NewGuid();
        var other = store.NewOrg();
        var body = Body(id);
        body["gatewayId"] = Org.Gateway;
        await Create(body);
        await other.SendAsync(HttpMethod.Post, Org.Sessions, other.UserToken(), new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));

        (await _org.UploadAsync(id, 0, Recordings.Lines(0, 3))).ShouldBeAccepted(sequence: 0);

        (await _org.SessionAsync(id)).GetProperty("batchCount").GetInt64().ShouldBe(1);
        (await other.SessionAsync(id)).GetProperty("batchCount").GetInt64().ShouldBe(0);
        (await other.LogsAsync(id)).Body.GetProperty("logs").GetArrayLength().ShouldBe(0);
    }
}
