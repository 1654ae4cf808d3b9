# Builds a Millrace image as `make images` does (hack/images.sh), for people who prefer Docker: one
# static binary on an empty base with CA certificates, run as 65532:65532, entrypoint /app.
# BINARY is manager, dispatcher, gateway or millrace; PKG overrides the package (the example
# handler: --build-arg PKG=./examples/handler).
#   docker build --build-arg BINARY=manager -t millrace-manager .
FROM golang:1.26 AS build
ARG BINARY=manager
ARG PKG=./cmd/${BINARY}
ARG TARGETOS=linux
ARG TARGETARCH=amd64
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY internal/ internal/
COPY examples/ examples/
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w" -o /out/app ${PKG}
RUN mkdir -p /out/etc && \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >/out/etc/passwd && \
    printf 'root:x:0:\nnonroot:x:65532:\n' >/out/etc/group

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/etc/passwd /out/etc/group /etc/
COPY --from=build /out/app /app
ENV PATH=/ SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
ENTRYPOINT ["/app"]
