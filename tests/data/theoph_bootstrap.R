# Reference numbers for ctkinetics' bootstrap of a population fit (issue 16), R + nlme.
#
# Model: R's Theoph, conc ~ SSfol(Dose, Time, lKe, lKa, lCl) (= models/onecpt_oral.toml),
# random = pdDiag(lKa + lCl ~ 1), additive residual error, method = "ML" (Pinheiro & Bates
# 2000, ch. 8). Bootstrap: B = 1000 case-resampling replicates of the 12 subjects (one
# stratum: a single dose level), each refitted from the original estimates; jackknife
# (leave one subject out) for the BCa acceleration. Run from the repository root:
#
#     Rscript tests/data/theoph_bootstrap.R
#
# Writes tests/data/theoph_bootstrap_r_replicates.csv (replicate, the 12 resampled subject
# numbers s1..s12, the estimates, converged; then the 12 jackknife fits as replicates
# "jack1".."jack12", leaving out subject 1..12) and tests/data/theoph_bootstrap_r_ci.csv
# (parameter, estimate, 2.5/97.5 % percentile and BCa limits, on the natural scale of the
# parameters ctkinetics reports: ka, ke, CL, omega2_ka, omega2_CL, sigma).
suppressMessages(library(nlme))
th <- read.csv("tests/data/theoph.csv")
ids <- sort(unique(th$Subject))
start <- c(lKe = -2.4547, lKa = 0.4657, lCl = -3.2272)

fit_one <- function(d) {
  g <- groupedData(conc ~ Time | Subject, data = d)
  f <- try(nlme(conc ~ SSfol(Dose, Time, lKe, lKa, lCl), data = g,
                fixed = lKe + lKa + lCl ~ 1, random = pdDiag(lKa + lCl ~ 1),
                start = start, method = "ML",
                control = nlmeControl(maxIter = 200, msMaxIter = 200, pnlsMaxIter = 20)),
           silent = TRUE)
  if (inherits(f, "try-error")) return(c(rep(NA, 6), 0))
  fe <- fixef(f)
  sds <- as.numeric(VarCorr(f)[c("lKa", "lCl"), "StdDev"])
  c(ka = exp(fe[["lKa"]]), ke = exp(fe[["lKe"]]), CL = exp(fe[["lCl"]]),
    omega2_ka = sds[1]^2, omega2_CL = sds[2]^2, sigma = f$sigma, 1)
}

resample <- function(idx) {
  parts <- lapply(seq_along(idx), function(k) {
    d <- th[th$Subject == ids[idx[k]], ]
    d$Subject <- k                     # a subject drawn twice counts as two subjects
    d
  })
  do.call(rbind, parts)
}

names_out <- c("ka", "ke", "CL", "omega2_ka", "omega2_CL", "sigma")
est <- fit_one(th)[1:6]
names(est) <- names_out
set.seed(20240516)
B <- 1000
draws <- t(replicate(B, sample.int(length(ids), length(ids), replace = TRUE)))
reps <- t(apply(draws, 1, function(idx) fit_one(resample(idx))))
colnames(reps) <- c(names_out, "converged")
jack <- t(sapply(seq_along(ids), function(k) fit_one(th[th$Subject != ids[k], ])[1:6]))
colnames(jack) <- names_out

out <- data.frame(replicate = seq_len(B), draws, reps)
names(out)[2:13] <- paste0("s", 1:12)
jk <- data.frame(replicate = paste0("jack", seq_along(ids)),
                 t(sapply(seq_along(ids), function(k) setdiff(seq_along(ids), k)[c(1:11, 11)])),
                 jack, converged = 1)
jk[, 13] <- NA                          # 11 subjects: s12 empty
names(jk) <- names(out)
out <- rbind(out, jk)
write.csv(out, "tests/data/theoph_bootstrap_r_replicates.csv", row.names = FALSE)

ok <- reps[, "converged"] == 1 & apply(is.finite(reps[, 1:6]), 1, all)
bca <- function(v, t0, jk, alpha) {
  z0 <- qnorm(mean(v < t0))
  d <- mean(jk) - jk
  a <- sum(d^3) / (6 * sum(d^2)^1.5)
  z <- qnorm(alpha)
  p <- pnorm(z0 + (z0 + z) / (1 - a * (z0 + z)))
  quantile(v, p, type = 7, names = FALSE)
}
ci <- do.call(rbind, lapply(names_out, function(p) {
  v <- log(reps[ok, p]); t0 <- log(est[[p]]); jk <- log(jack[, p])
  q <- quantile(v, c(0.025, 0.975), type = 7, names = FALSE)
  b <- bca(v, t0, jk, c(0.025, 0.975))
  data.frame(parameter = p, estimate = est[[p]], pct_low = exp(q[1]), pct_high = exp(q[2]),
             bca_low = exp(b[1]), bca_high = exp(b[2]), n_ok = sum(ok), B = B)
}))
write.csv(ci, "tests/data/theoph_bootstrap_r_ci.csv", row.names = FALSE)
print(ci, digits = 6)
cat(R.version.string, "nlme", as.character(packageVersion("nlme")), "\n")
