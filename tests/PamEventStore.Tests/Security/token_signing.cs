using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Internal;
using PamEventStore.Security;
using PamEventStore.Storage;
using PamEventStore.Tests.Infrastructure;

namespace PamEventStore.Tests.Security;

public sealed class token_signing : IDisposable
{
    private readonly LocalDataDirectory _data = new(Path.Combine(Path.GetTempPath(), $"pamstore-signing-{Guid.NewGuid():N}"));

    private static IHostEnvironment Environment(string name) => new HostingEnvironment { EnvironmentName = name };

    [Theory]
    [InlineData("Production")]
    [InlineData("Development")]
    public void a_signing_key_next_to_an_issuer_refuses_to_start(string environment)
    {
        var options = new AuthOptions { SigningKey = TestKeys.SigningKey, Authority = "https://issuer.example" };

        var error = Should.Throw<InvalidOperationException>(() => TokenSigning.Resolve(options, Environment(environment), _data));

        error.Message.ShouldContain("Auth:SigningKey and Auth:Authority are both set");
    }

    [Fact]
    public void an_issuer_alone_needs_no_signing_key()
    {
        TokenSigning.Resolve(new AuthOptions { Authority = "https://issuer.example" }, Environment(Environments.Production), _data).ShouldBeNull();
    }

    [Fact]
    public void a_signing_key_alone_is_the_key()
    {
        var key = TokenSigning.Resolve(new AuthOptions { SigningKey = TestKeys.SigningKey }, Environment(Environments.Production), _data);

        key.ShouldNotBeNull().Key.ShouldBe(Convert.FromBase64String(TestKeys.SigningKey));
    }

    [Fact]
    public void production_without_either_refuses_to_start()
    {
        var error = Should.Throw<InvalidOperationException>(() => TokenSigning.Resolve(new AuthOptions(), Environment(Environments.Production), _data));

        error.Message.ShouldContain("Auth:Authority");
        Directory.Exists(_data.Path).ShouldBeFalse();
    }

    public void Dispose()
    {
        if (Directory.Exists(_data.Path)) Directory.Delete(_data.Path, recursive: true);
    }
}
