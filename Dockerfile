# The service image: `docker compose up -d` builds it (see docker-compose.yml).
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY Directory.Build.props Directory.Packages.props ./
COPY src/PamEventStore.LocalPostgres/PamEventStore.LocalPostgres.csproj src/PamEventStore.LocalPostgres/
COPY src/PamEventStore/PamEventStore.csproj src/PamEventStore/
RUN dotnet restore src/PamEventStore/PamEventStore.csproj
COPY src/ src/
RUN dotnet publish src/PamEventStore/PamEventStore.csproj -c Release -o /app --no-restore

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /app ./
ENV ASPNETCORE_URLS=http://0.0.0.0:8080
EXPOSE 8080
# The compose file mounts a volume here for the development keys: owned by the user the service runs as,
# or the volume would be root's and the service could not write its keys.
RUN mkdir /data && chown app:app /data
USER app
ENTRYPOINT ["dotnet", "PamEventStore.dll"]
